//! Proton's `recurring_timer.py`: print `Tick...` every period, rescheduling the timer from
//! its own `on_timer_task`, until interrupted. Two flags Proton's script does not have set the
//! period and an optional run time.
//!
//! ```text
//! recurring_timer [-p 1.0] [-t 0]
//! ```

use std::time::Duration;

use amqp_engine::messaging::{Event, MessagingHandler, TimerHandle};
use amqp_examples::args::{Parser, HELP_TEMPLATE};
use amqp_tokio::Container;

struct Recurring {
    period: Duration,
    timeout: Option<Duration>,
    stop_timer: Option<TimerHandle>,
}

impl MessagingHandler for Recurring {
    fn on_start(&mut self, e: &mut Event<'_>) {
        e.container_mut().schedule(self.period);
        if let Some(t) = self.timeout {
            self.stop_timer = Some(e.container_mut().schedule(t));
        }
    }

    fn on_timer_task(&mut self, e: &mut Event<'_>) {
        if e.timer().is_some() && e.timer() == self.stop_timer {
            e.container_mut().stop();
            return;
        }
        println!("Tick...");
        e.container_mut().schedule(self.period);
    }
}

fn seconds(flag: &str, v: f64) -> Duration {
    Duration::try_from_secs_f64(v).unwrap_or_else(|_| {
        eprintln!("error: option --{flag}: invalid number of seconds: {v}");
        std::process::exit(2)
    })
}

/// Print Tick... periodically.
#[derive(Parser)]
#[command(name = "recurring_timer", help_template = HELP_TEMPLATE)]
struct Args {
    /// time between ticks
    #[arg(short, long, value_name = "SECONDS", default_value_t = 1.0)]
    period: f64,
    /// stop after this long; 0 runs until interrupted
    #[arg(short, long, value_name = "SECONDS", default_value_t = 0.0)]
    timeout: f64,
}

fn main() {
    let m = Args::parse();
    let period = seconds("period", m.period);
    let timeout = seconds("timeout", m.timeout);
    Container::new(Recurring {
        period,
        timeout: (!timeout.is_zero()).then_some(timeout),
        stop_timer: None,
    })
    .run();
}
