//! Compose's resource values as Kubernetes quantities.
//!
//! Compose writes `cpus: "0.5"` and `memory: 256M` (byte units with a
//! 1024 base: b, k, m, g and their `kb`…`gb` spellings); Kubernetes wants
//! `500m` and `256Mi`. Both are converted exactly or refused, so a limit
//! never silently changes size on its way to the cluster.

use anyhow::{Context as _, bail};

use crate::compose::Scalar;

/// `0.5` → `500m`, `2` → `2`: CPU in whole millicores.
pub fn cpus(value: &Scalar) -> anyhow::Result<String> {
    let text = value.clone().into_text();
    let cores: f64 = text
        .trim()
        .parse()
        .with_context(|| format!("cpus {text:?} is not a number"))?;
    let millis = cores * 1000.0;
    if !(millis.is_finite() && millis >= 1.0 && (millis - millis.round()).abs() < 1e-6) {
        bail!("cpus {text:?} is not a whole number of millicores (at least 0.001)");
    }
    let millis = millis.round() as u64;
    Ok(if millis.is_multiple_of(1000) {
        (millis / 1000).to_string()
    } else {
        format!("{millis}m")
    })
}

/// `256M` → `256Mi`, `1.5g` → `1536Mi`, `1000` → `1000`: bytes in the
/// largest binary unit that holds them exactly.
pub fn memory(value: &Scalar) -> anyhow::Result<String> {
    let bytes = memory_bytes(value)?;
    if bytes == 0 {
        bail!("memory must be more than 0 bytes");
    }
    let unit = [("Gi", 1u64 << 30), ("Mi", 1 << 20), ("Ki", 1 << 10)]
        .into_iter()
        .find(|(_, size)| bytes % size == 0);
    Ok(match unit {
        Some((suffix, size)) => format!("{}{suffix}", bytes / size),
        None => bytes.to_string(),
    })
}

fn memory_bytes(value: &Scalar) -> anyhow::Result<u64> {
    let text = value.clone().into_text();
    let lower = text.trim().to_ascii_lowercase();
    let number_end = lower
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(lower.len());
    let (number, unit) = lower.split_at(number_end);
    let scale: u64 = match unit.trim() {
        "" | "b" => 1,
        "k" | "kb" => 1 << 10,
        "m" | "mb" => 1 << 20,
        "g" | "gb" => 1 << 30,
        other => bail!("memory {text:?}: unknown unit {other:?} (use b, k, m or g)"),
    };
    let amount: f64 = number
        .parse()
        .with_context(|| format!("memory {text:?} is not a size like 256M"))?;
    let bytes = amount * scale as f64;
    if !(bytes.is_finite() && bytes.fract() == 0.0 && bytes <= u64::MAX as f64) {
        bail!("memory {text:?} is not a whole number of bytes");
    }
    Ok(bytes as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: &str) -> Scalar {
        Scalar::Text(s.into())
    }

    #[test]
    fn cpus_become_millicores() {
        assert_eq!(cpus(&text("0.5")).expect("ok"), "500m");
        assert_eq!(cpus(&Scalar::Float(0.25)).expect("ok"), "250m");
        assert_eq!(cpus(&Scalar::Int(2)).expect("ok"), "2");
        assert_eq!(cpus(&text("1.5")).expect("ok"), "1500m");
        for bad in ["0", "-1", "0.0001", "many", ""] {
            assert!(cpus(&text(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn memory_keeps_its_exact_size() {
        assert_eq!(memory(&text("256M")).expect("ok"), "256Mi");
        assert_eq!(memory(&text("256mb")).expect("ok"), "256Mi");
        assert_eq!(memory(&text("1g")).expect("ok"), "1Gi");
        assert_eq!(memory(&text("1.5G")).expect("ok"), "1536Mi");
        assert_eq!(memory(&text("512k")).expect("ok"), "512Ki");
        assert_eq!(memory(&Scalar::Int(1000)).expect("ok"), "1000");
        for bad in ["0", "12x", "1.5b", "M", "-5m"] {
            assert!(memory(&text(bad)).is_err(), "{bad}");
        }
    }
}
