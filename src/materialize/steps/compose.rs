//! Step 6, compose: the compose file holds exactly the container services,
//! or there is no file at all.

use crate::error::Result;
use crate::materialize::driver::Syncer;
use crate::materialize::{Action, ActionKind};

impl Syncer<'_> {
    /// The compose file: exactly the container services, or no file at all.
    pub(in crate::materialize) fn compose(&mut self) -> Result<()> {
        let plan = self.plan;
        let rel = plan.project.compose_file.clone();
        let rendered = crate::compose::render(plan);
        if let Some(text) = &rendered {
            self.lock.record_file(rel.clone(), text.as_bytes());
        }
        let n = plan.container_services().count();
        let what = format!(
            "{rel} ({n} container service{})",
            if n == 1 { "" } else { "s" }
        );
        if self.opts.dry_run {
            match crate::compose::check(plan)? {
                crate::compose::ComposeStatus::Fresh => {
                    self.act(ActionKind::Fresh, "compose", what, Some(&rel), None)
                }
                crate::compose::ComposeStatus::Absent => {}
                crate::compose::ComposeStatus::Stale => self.act(
                    ActionKind::Remove,
                    "compose",
                    format!("{rel} (no container service remains)"),
                    Some(&rel),
                    None,
                ),
                crate::compose::ComposeStatus::Differs { diff } => self.push(Action {
                    action: ActionKind::Write,
                    component: "compose".into(),
                    message: what,
                    path: Some(rel),
                    command: None,
                    diff: Some(diff),
                }),
                crate::compose::ComposeStatus::Missing => {
                    self.act(ActionKind::Write, "compose", what, Some(&rel), None)
                }
            }
            return Ok(());
        }
        match crate::compose::write(plan, &mut self.txn)? {
            crate::compose::ComposeOutcome::Written { .. } => {
                self.act(ActionKind::Write, "compose", what, Some(&rel), None)
            }
            crate::compose::ComposeOutcome::Unchanged { .. } => {
                self.act(ActionKind::Fresh, "compose", what, Some(&rel), None)
            }
            crate::compose::ComposeOutcome::Removed { .. } => self.act(
                ActionKind::Remove,
                "compose",
                format!("{rel} (no container service remains)"),
                Some(&rel),
                None,
            ),
            crate::compose::ComposeOutcome::NotNeeded { .. } => {}
        }
        Ok(())
    }
}
