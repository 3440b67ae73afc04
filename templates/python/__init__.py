"""{name}: a service managed by `cargo hsm`."""
