//! Compile-time parsing of duration and size literals such as `"90s"`, `"3d"`,
//! `"1h30m"`, `"3 days"`, `"1h 30m"`, `"90 seconds"`, `"10MB"` and `"512KiB"`.

use std::time::Duration;

/// Parses a duration: one or more `<number> <unit>` parts (the space is
/// optional), with the units people write, as the `humantime` crate spells them:
/// `ms`/`msec`/`millis`/`milliseconds`, `s`/`sec`/`secs`/`seconds`,
/// `m`/`min`/`mins`/`minutes`, `h`/`hr`/`hrs`/`hours`, `d`/`days`, `w`/`weeks`
/// (and their singulars).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let total = parts(text)?
        .into_iter()
        .try_fold(Duration::ZERO, |total, (number, unit)| {
            let unit = match unit {
                "ms" | "msec" | "msecs" | "millis" | "millisecond" | "milliseconds" => Duration::from_millis(1),
                "s" | "sec" | "secs" | "second" | "seconds" => Duration::from_secs(1),
                "m" | "min" | "mins" | "minute" | "minutes" => Duration::from_secs(60),
                "h" | "hr" | "hrs" | "hour" | "hours" => Duration::from_secs(3600),
                "d" | "day" | "days" => Duration::from_secs(86_400),
                "w" | "week" | "weeks" => Duration::from_secs(7 * 86_400),
                other => {
                    return Err(format!(
                        "unknown duration unit `{other}`: use ms, s, m, h, d or w (or seconds, minutes, hours, days, weeks)"
                    ));
                }
            };
            unit.checked_mul(number)
                .and_then(|part| total.checked_add(part))
                .ok_or_else(|| "duration too large".to_string())
        })?;
    Ok(total)
}

/// Parses a size in bytes: `<number><unit>`, units `B`, `KB`, `MB`, `GB` (powers
/// of 1000) or `KiB`, `MiB`, `GiB` (powers of 1024).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let [(number, unit)] = parts(text)?[..] else {
        return Err("give one number and one unit, such as \"10MB\"".into());
    };
    let unit: u64 = match unit {
        "B" => 1,
        "KB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        other => {
            return Err(format!(
                "unknown size unit `{other}`: use B, KB, MB, GB, KiB, MiB or GiB"
            ));
        }
    };
    u64::from(number)
        .checked_mul(unit)
        .ok_or_else(|| "size too large".into())
}

/// Splits `"1h30m"` into `[(1, "h"), (30, "m")]`.
fn parts(text: &str) -> Result<Vec<(u32, &str)>, String> {
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err("empty value".into());
    }
    let mut parts = Vec::new();
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
        if digits == 0 {
            return Err(format!("expected a number at `{rest}`"));
        }
        let number = rest[..digits]
            .parse()
            .map_err(|_| format!("number too large: `{}`", &rest[..digits]))?;
        rest = rest[digits..].trim_start();
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c.is_whitespace())
            .unwrap_or(rest.len());
        if unit_len == 0 {
            return Err(format!("`{number}` needs a unit"));
        }
        parts.push((number, &rest[..unit_len]));
        rest = rest[unit_len..].trim_start();
    }
    Ok(parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("3d"), Ok(Duration::from_secs(3 * 86_400)));
        assert_eq!(parse_duration("1h 30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("3 days"), Ok(Duration::from_secs(3 * 86_400)));
        assert_eq!(parse_duration("90 seconds"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("1 hour 30 minutes"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("2hrs 5mins"), Ok(Duration::from_secs(7500)));
        assert_eq!(
            parse_duration("1 week 1 day"),
            Ok(Duration::from_secs(8 * 86_400))
        );
        assert!(
            parse_duration("3 fortnights")
                .unwrap_err()
                .contains("unknown duration unit `fortnights`")
        );
        assert!(parse_duration("10").unwrap_err().contains("needs a unit"));
        assert!(parse_duration("").is_err());
        assert!(parse_duration("h").is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("10MB"), Ok(10_000_000));
        assert_eq!(parse_size("512KiB"), Ok(512 * 1024));
        assert_eq!(parse_size("7B"), Ok(7));
        assert!(parse_size("1MB 2KB").is_err());
        assert!(parse_size("5mb").unwrap_err().contains("unknown size unit"));
    }
}
