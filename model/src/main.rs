//! `cargo run -p model --release`: model-checks SPEC §7 on the real core and
//! exits non-zero if any property is violated.

use clap::{Parser, Subcommand};
use gateway_core::Millis;
use model::{check, trace, Bounds, Ending, GatewayModel, Policy};
use stateright::Model;
use std::process::ExitCode;

/// Model-check the progress gateway's invariants (SPEC §7).
#[derive(Parser, Debug)]
#[command(version)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// Room behaviour to check: production's, or a rejected seed behaviour.
    #[arg(long, value_enum, default_value_t = Policy::Spec, global = true)]
    policy: Policy,
    /// Subscribers (≥ 2).
    #[arg(long, default_value_t = 2, global = true)]
    subscribers: usize,
    /// Subscribers 0 and 1 share one clientId.
    #[arg(long, global = true)]
    shared_client_id: bool,
    /// Progress events before the job ends.
    #[arg(long, default_value_t = 2, global = true)]
    events: u64,
    /// How the producer ends the job.
    #[arg(long, value_enum, default_value_t = Ending::Complete, global = true)]
    ending: Ending,
    /// Room evictions (any time, or between a write and its fan-out).
    #[arg(long, default_value_t = 1, global = true)]
    evictions: u8,
    /// Dropped links (both ends or half-open).
    #[arg(long, default_value_t = 1, global = true)]
    drops: u8,
    /// Subscriber cancels.
    #[arg(long, default_value_t = 1, global = true)]
    cancels: u8,
    /// Time steps while the job runs.
    #[arg(long, default_value_t = 2, global = true)]
    time_steps: u8,
    /// Timer wake-ups allowed after the job ended (liveness fairness bound).
    #[arg(long, default_value_t = 12, global = true)]
    heal_wakes: u8,
    /// Token lifetime in seconds.
    #[arg(long, default_value_t = 120, global = true)]
    ttl_secs: u64,
    /// Depth bound for the search (0: none; the budgets bound it already).
    #[arg(long, default_value_t = 0, global = true)]
    depth: usize,
    /// Checker threads (default: all cores).
    #[arg(long, global = true)]
    threads: Option<usize>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Open stateright's explorer on 127.0.0.1.
    Explore {
        /// Port on 127.0.0.1.
        #[arg(long, default_value_t = 3000)]
        port: u16,
    },
}

impl Cli {
    fn bounds(&self) -> Bounds {
        Bounds {
            subscribers: self.subscribers,
            shared_client_id: self.shared_client_id,
            events: self.events,
            ending: self.ending,
            evictions: self.evictions,
            drops: self.drops,
            cancels: self.cancels,
            time_steps: self.time_steps,
            heal_wakes: self.heal_wakes,
            ttl: Millis::from_secs(self.ttl_secs),
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let model = GatewayModel::new(cli.policy, cli.bounds());
    let b = &model.bounds;
    println!(
        "model: policy {}, {} subscribers{}, {} events then {:?}, {} evictions, {} drops, \
         {} cancels, {} time steps, {} wakes after the end, ttl {} s, depth {}",
        cli.policy.name(),
        b.subscribers,
        if b.shared_client_id {
            " (0 and 1 share a clientId)"
        } else {
            ""
        },
        b.events,
        b.ending,
        b.evictions,
        b.drops,
        b.cancels,
        b.time_steps,
        b.heal_wakes,
        b.ttl.0 / 1000,
        if cli.depth == 0 {
            "unbounded".to_owned()
        } else {
            cli.depth.to_string()
        },
    );
    if let Some(Command::Explore { port }) = cli.command {
        let addr = format!("127.0.0.1:{port}");
        println!("explorer on http://{addr}/ (Ctrl-C to stop)");
        let _checker = model.checker().serve(addr);
        return ExitCode::SUCCESS;
    }
    let threads = cli
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from));
    let outcome = check(model.clone(), threads, cli.depth);
    println!(
        "explored {} states, {} unique, max depth {}, in {:.1} s on {threads} threads",
        outcome.states,
        outcome.unique_states,
        outcome.max_depth,
        outcome.elapsed.as_secs_f64()
    );
    for v in &outcome.verdicts {
        println!(
            "  {:<9} {}",
            if v.counterexample.is_some() {
                "VIOLATED"
            } else {
                "holds"
            },
            v.invariant.name()
        );
    }
    for (situation, reached) in &outcome.reached {
        println!(
            "  {:<9} {}",
            if *reached { "reached" } else { "UNREACHED" },
            situation.name()
        );
    }
    for v in &outcome.verdicts {
        if let Some(path) = &v.counterexample {
            println!(
                "\ncounterexample for invariant {} ({} steps):",
                v.invariant.name(),
                path.len()
            );
            print!("{}", trace::render(&trace::replay(&model, path)));
        }
    }
    let unreached = outcome.unreached();
    if !unreached.is_empty() {
        println!("\nthe bounds are too small to reach: {unreached:?}");
    }
    if outcome.all_hold() && unreached.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
