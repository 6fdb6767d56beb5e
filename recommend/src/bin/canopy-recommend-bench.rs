//! Runs the recommendation engine on synthetic organisations with planted
//! waste and prints precision, recall and the saving error per kind.
//!
//! Usage: `canopy-recommend-bench [--seeds N] [--accounts N]`

use anyhow::{Context, bail};
use canopy_recommend::bench::{Score, score};
use canopy_recommend::recommendation::Kind;
use canopy_recommend::sim::{SimConfig, generate};

fn flag(args: &[String], name: &str, default: u64) -> anyhow::Result<u64> {
    match args.iter().position(|a| a == name) {
        None => Ok(default),
        Some(i) => args
            .get(i + 1)
            .with_context(|| format!("{name}: expected a number, found nothing"))?
            .parse()
            .with_context(|| format!("{name}: expected a number")),
    }
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(bad) = args
        .iter()
        .step_by(2)
        .find(|a| *a != "--seeds" && *a != "--accounts")
    {
        bail!("unknown argument {bad:?}: expected --seeds N or --accounts N");
    }
    let seeds = flag(&args, "--seeds", 10)?;
    let accounts = flag(&args, "--accounts", 20)? as usize;
    let mut total = Score {
        kinds: Kind::ALL.iter().map(|k| (*k, Default::default())).collect(),
        residency_violations: 0,
    };
    let (mut resources, mut planted) = (0, 0);
    let started = std::time::Instant::now();
    for seed in 0..seeds {
        let org = generate(SimConfig { seed, accounts });
        let inv = org.inventory();
        let recs = canopy_recommend::recommend(&inv)?;
        let s = score(&inv, &org.truth, &recs);
        resources += inv.resources.len();
        planted += org.truth.len();
        total.residency_violations += s.residency_violations;
        for ((_, t), (_, k)) in total.kinds.iter_mut().zip(s.kinds) {
            t.true_positives += k.true_positives;
            t.false_positives += k.false_positives;
            t.false_negatives += k.false_negatives;
            t.saving_errors.extend(k.saving_errors);
        }
    }
    println!(
        "{seeds} organisations x ({accounts} accounts + 4 special), {resources} resources, {planted} planted, {:.2} s",
        started.elapsed().as_secs_f64()
    );
    println!(
        "{:<20} {:>5} {:>5} {:>5} {:>9} {:>9} {:>12} {:>14}",
        "kind", "tp", "fp", "fn", "precision", "recall", "max |err|", "within ±15 %"
    );
    for (kind, k) in &total.kinds {
        println!(
            "{:<20} {:>5} {:>5} {:>5} {:>8.1}% {:>8.1}% {:>11.1}% {:>13.1}%",
            kind.as_str(),
            k.true_positives,
            k.false_positives,
            k.false_negatives,
            100.0 * k.precision(),
            100.0 * k.recall(),
            100.0 * k.max_abs_error(),
            100.0 * k.within(0.15)
        );
    }
    println!("residency violations: {}", total.residency_violations);
    Ok(())
}
