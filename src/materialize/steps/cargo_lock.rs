//! Part of step 4: the `Cargo.lock` of a Rust crate in a git service's
//! checkout (a maturin/PyO3 extension module). An upstream library crate
//! usually commits none, so cargo resolves its dependencies afresh on every
//! machine. hsm keeps the one the first build wrote in
//! `hsm.locks/<service>/Cargo.lock`, puts it back into the checkout before
//! the service's runtime builds it, and with `--locked` / `--frozen` has
//! cargo build from it as it is, as it does with a venv service's pins.

use camino::{Utf8Path, Utf8PathBuf};

use crate::error::{Error, Result};
use crate::materialize::driver::Syncer;
use crate::materialize::ActionKind;
use crate::plan::PlannedService;

/// The `Cargo.lock` of a service's crate.
pub(super) struct CargoLock {
    /// Where cargo writes it, relative to the workspace root.
    in_checkout: Utf8PathBuf,
    /// `hsm.locks/<service>/Cargo.lock`, when the upstream commits none.
    kept: Option<Utf8PathBuf>,
    /// The kept one was put into the checkout (in a dry run: would be):
    /// the crate must be built again, since uv does not watch `Cargo.lock`.
    pub(super) placed: bool,
}

/// `hsm.locks/<service>/Cargo.lock` (relative to the workspace root), for
/// the fingerprint: a stat, no lookup of the crate.
pub(super) fn kept_path(sv: &PlannedService) -> Option<Utf8PathBuf> {
    sv.checkout_path.as_ref()?;
    Some(crate::lock::committed_lock(
        &sv.name,
        Utf8Path::new("Cargo.lock"),
    ))
}

impl Syncer<'_> {
    /// For a git service whose target holds a Rust crate: puts the kept
    /// `Cargo.lock` into the checkout when it differs from the one there.
    /// With `--locked` or `--frozen`, a kept lock must exist when the
    /// upstream commits none.
    pub(super) fn place_cargo_lock(
        &mut self,
        sv: &PlannedService,
        target_rel: &Utf8Path,
    ) -> Result<Option<CargoLock>> {
        let Some(co) = &sv.checkout_path else {
            return Ok(None);
        };
        let checkout = self.root.join(co);
        let Some(abs) =
            crate::materialize::cargo_workspace::cargo_lock(&checkout, &self.root.join(target_rel))
        else {
            return Ok(None);
        };
        let in_checkout = crate::paths::relative_to(&abs, &self.root);
        let in_repo = crate::paths::relative_to(&abs, &checkout);
        let kept = (!crate::git::tracks(&checkout, &in_repo))
            .then(|| kept_path(sv))
            .flatten();
        if !self.opts.dry_run {
            // The build may write it: restored if the sync fails.
            self.txn
                .snapshot(&abs)
                .map_err(|e| Error::failed(format!("cannot read `{in_checkout}`: {e}")))?;
        }
        let mut lock = CargoLock {
            in_checkout,
            kept,
            placed: false,
        };
        let Some(kept) = &lock.kept else {
            return Ok(Some(lock));
        };
        let Ok(bytes) = std::fs::read(self.root.join(kept)) else {
            if self.opts.locked || self.opts.frozen {
                let flag = if self.opts.frozen {
                    "--frozen"
                } else {
                    "--locked"
                };
                return Err(Error::failed(format!(
                    "`{flag}` needs the `Cargo.lock` of service `{}` in `{kept}`, which does not exist \
                     (its upstream commits none)",
                    sv.name
                ))
                .with_help(format!(
                    "run `cargo hsm sync` without `{flag}` to build the service and keep its \
                     `Cargo.lock` in `{kept}`, then commit it"
                )));
            }
            return Ok(Some(lock));
        };
        let dest = self.root.join(&lock.in_checkout);
        if std::fs::read(&dest).ok().as_deref() == Some(bytes.as_slice()) {
            return Ok(Some(lock));
        }
        let rel = lock.in_checkout.clone();
        self.write_file(&rel, &bytes, None)?;
        lock.placed = true;
        Ok(Some(lock))
    }

    /// After the runtime built the crate: the `Cargo.lock` cargo wrote goes
    /// to `hsm.locks/<service>/`, unless the upstream commits its own.
    pub(super) fn keep_cargo_lock(&mut self, component: &str, lock: &CargoLock) -> Result<()> {
        let Some(kept) = &lock.kept else {
            return Ok(());
        };
        if self.opts.dry_run && lock.placed {
            // The checkout would hold the kept one: nothing to predict but
            // what cargo may change in it, which only the build tells.
            return Ok(());
        }
        let Ok(bytes) = std::fs::read(self.root.join(&lock.in_checkout)) else {
            return Ok(());
        };
        if self.write_file(kept, &bytes, None)? {
            self.act(
                ActionKind::Write,
                component,
                kept.to_string(),
                Some(kept),
                None,
            );
        }
        Ok(())
    }
}
