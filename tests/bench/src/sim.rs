//! The simulator's speed: simulated phone-days per second for each scheme, against the rate
//! the design target (100,000 phones × 14 days in 10 minutes on this 2-core machine).

use ephemera_sim::{self as sim, Scenario, SchemeName, SimError};

use super::Figure;

/// Phone-days per second the scale target needs: 100,000 × 14 in 600 s.
pub const TARGET_AGENT_DAYS_PER_SECOND: f64 = 100_000.0 * 14.0 / 600.0;

/// Runs `agents` phones for `days` days once per scheme (seed 1, every core) and reports
/// agent-days per second and wall seconds.
///
/// # Errors
/// What the simulator returns.
pub fn run(agents: u32, days: u32) -> Result<Vec<Figure>, SimError> {
    let mut figures = Vec::new();
    for scheme in [SchemeName::Gaen, SchemeName::Pet] {
        let scenario = Scenario {
            agents,
            days,
            seed: 1,
            scheme,
            ..Scenario::default()
        };
        let scored = sim::run(&scenario)?;
        let wall = scored.summary.wall_seconds.max(1e-9);
        let rate = f64::from(agents) * f64::from(days) / wall;
        let name = scheme.as_str();
        figures.push(Figure::new(
            &format!("sim-{name}"),
            rate,
            "agent-days/s",
            TARGET_AGENT_DAYS_PER_SECOND,
        ));
        // Wall time projected to 100,000 × 14 at this rate, against the 600 s bar (lower is
        // better: a ratio above 1 misses the bar).
        let projected = 100_000.0 * 14.0 / rate;
        figures.push(Figure::new(
            &format!("sim-{name}-projected-100k-14d"),
            projected,
            "s",
            600.0,
        ));
    }
    Ok(figures)
}
