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
        let rendered = crate::deploy::compose::render(plan);
        if let Some(text) = &rendered {
            self.lock.record_file(rel.clone(), text.as_bytes());
        }
        let n = plan.container_services().count();
        let what = format!(
            "{rel} ({n} container service{})",
            if n == 1 { "" } else { "s" }
        );
        if self.opts.dry_run {
            match crate::deploy::compose::check(plan)? {
                crate::deploy::compose::ComposeStatus::Fresh => {
                    self.act(ActionKind::Fresh, "compose", what, Some(&rel), None)
                }
                crate::deploy::compose::ComposeStatus::Absent => {}
                crate::deploy::compose::ComposeStatus::Stale => self.act(
                    ActionKind::Remove,
                    "compose",
                    format!("{rel} (no container service remains)"),
                    Some(&rel),
                    None,
                ),
                crate::deploy::compose::ComposeStatus::Differs { diff } => self.push(Action {
                    action: ActionKind::Write,
                    component: "compose".into(),
                    message: what,
                    path: Some(rel),
                    command: None,
                    diff: Some(diff),
                }),
                crate::deploy::compose::ComposeStatus::Missing => {
                    self.act(ActionKind::Write, "compose", what, Some(&rel), None)
                }
            }
            return Ok(());
        }
        match crate::deploy::compose::write(plan, &mut self.txn)? {
            crate::deploy::compose::ComposeOutcome::Written { .. } => {
                self.act(ActionKind::Write, "compose", what, Some(&rel), None)
            }
            crate::deploy::compose::ComposeOutcome::Unchanged { .. } => {
                self.act(ActionKind::Fresh, "compose", what, Some(&rel), None)
            }
            crate::deploy::compose::ComposeOutcome::Removed { .. } => self.act(
                ActionKind::Remove,
                "compose",
                format!("{rel} (no container service remains)"),
                Some(&rel),
                None,
            ),
            crate::deploy::compose::ComposeOutcome::NotNeeded { .. } => {}
        }
        Ok(())
    }
}
