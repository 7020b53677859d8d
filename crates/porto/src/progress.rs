//! Progress bars for image transfers, on a terminal only (indicatif hides
//! them elsewhere).

use std::sync::OnceLock;

use indicatif::{ProgressBar, ProgressStyle};
use porto_oci::TransferProgress;

/// One transfer's bar, drawn from its start.
#[derive(Default)]
pub struct Bar(OnceLock<ProgressBar>);

impl TransferProgress for Bar {
    fn start(&self, label: &str, total_bytes: u64) {
        let bar = ProgressBar::new(total_bytes);
        bar.set_style(
            ProgressStyle::with_template("{prefix} [{bar:30}] {bytes}/{total_bytes}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar.set_prefix(label.to_string());
        let _ = self.0.set(bar);
    }

    fn advance(&self, bytes: u64) {
        if let Some(bar) = self.0.get() {
            bar.inc(bytes);
        }
    }

    fn finish(&self) {
        if let Some(bar) = self.0.get() {
            bar.finish_and_clear();
        }
    }
}
