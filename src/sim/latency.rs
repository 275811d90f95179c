//! Simulated server latencies: how long a real server takes to answer one
//! request once it starts on it, fixed or drawn from a simple
//! distribution with the simulation's seeded generator.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use rand::Rng;

/// How long a simulated server takes per request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Latency {
    /// Always this long (`20ms`).
    Fixed(Duration),
    /// Exponentially distributed with this mean (`exp:20ms`).
    Exponential(Duration),
    /// Uniform between two bounds, inclusive (`uniform:10ms..30ms`).
    Uniform(Duration, Duration),
}

impl Default for Latency {
    /// A fixed 10 ms.
    fn default() -> Self {
        Latency::Fixed(Duration::from_millis(10))
    }
}

impl Latency {
    /// One latency in nanoseconds, drawn with `rng` (a fixed latency
    /// draws nothing).
    pub fn sample(&self, rng: &mut impl Rng) -> u64 {
        let nanos = |d: &Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        match self {
            Latency::Fixed(d) => nanos(d),
            Latency::Exponential(mean) => {
                // 1 - u is in (0, 1], so its logarithm is finite.
                let u: f64 = rng.gen();
                (-(1.0 - u).ln() * nanos(mean) as f64) as u64
            }
            Latency::Uniform(low, high) => rng.gen_range(nanos(low)..=nanos(high)),
        }
    }
}

/// Parses `250us`, `20ms`, `1.5s`: a non-negative decimal and a unit.
///
/// ```
/// use std::time::Duration;
/// assert_eq!(ktcpvs::sim::parse_duration("1.5ms"), Ok(Duration::from_micros(1500)));
/// assert!(ktcpvs::sim::parse_duration("20").is_err());
/// ```
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .ok_or_else(|| format!("{text:?} has no unit (us, ms or s)"))?;
    let (value, unit) = text.split_at(split);
    let value: f64 = value
        .parse()
        .map_err(|_| format!("malformed duration {text:?}"))?;
    let scale = match unit {
        "us" => 1e-6,
        "ms" => 1e-3,
        "s" => 1.0,
        _ => return Err(format!("unknown unit in {text:?} (us, ms or s)")),
    };
    Duration::try_from_secs_f64(value * scale).map_err(|e| format!("{text:?}: {e}"))
}

impl FromStr for Latency {
    type Err = String;

    /// `20ms`, `exp:20ms` or `uniform:10ms..30ms`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use ktcpvs::sim::Latency;
    /// let ms = Duration::from_millis;
    /// assert_eq!("exp:20ms".parse(), Ok(Latency::Exponential(ms(20))));
    /// assert_eq!("uniform:1ms..3ms".parse(), Ok(Latency::Uniform(ms(1), ms(3))));
    /// assert!("uniform:3ms..1ms".parse::<Latency>().is_err());
    /// ```
    fn from_str(text: &str) -> Result<Self, String> {
        if let Some(mean) = text.strip_prefix("exp:") {
            return parse_duration(mean).map(Latency::Exponential);
        }
        if let Some(range) = text.strip_prefix("uniform:") {
            let (low, high) = range
                .split_once("..")
                .ok_or_else(|| format!("expected uniform:LOW..HIGH, got {text:?}"))?;
            let (low, high) = (parse_duration(low)?, parse_duration(high)?);
            if low > high {
                return Err(format!("{text:?}: the low bound is above the high one"));
            }
            return Ok(Latency::Uniform(low, high));
        }
        parse_duration(text).map(Latency::Fixed)
    }
}

impl fmt::Display for Latency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Latency::Fixed(d) => write!(f, "{d:?}"),
            Latency::Exponential(d) => write!(f, "exp:{d:?}"),
            Latency::Uniform(a, b) => write!(f, "uniform:{a:?}..{b:?}"),
        }
    }
}
