// Entry point: `npm start` (the service's `command` in the hsm registry).
console.log("{name} is running");
