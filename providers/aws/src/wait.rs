//! Awaiting readiness: RDS instances and ElastiCache groups take minutes to become `available`
//! after a create or a modification, and to disappear after a delete. A poll loop checks the
//! status every `providers.aws.poll_interval` until it is ready, or the time limit passes: the
//! resource's `custom_timeouts`, else a default for the kind of change, as Terraform uses.

use std::future::Future;
use std::time::Duration;

// tokio's clock: tests can pause it.
use tokio::time::Instant;

use berth_engine::{CallContext, ProviderError};

/// Which change is being awaited (selects the default limit and names it in messages).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    Create,
    Update,
    Delete,
}

impl Change {
    fn option(self) -> &'static str {
        match self {
            Change::Create => "custom_timeouts.create",
            Change::Update => "custom_timeouts.update",
            Change::Delete => "custom_timeouts.delete",
        }
    }
}

/// One look at the resource.
pub enum Poll<T> {
    Ready(T),
    /// Not yet: the status AWS reports (`creating`, `modifying`, `deleting`).
    Waiting(String),
}

/// The limit for one wait: the engine's (from `custom_timeouts`) minus a margin, so that this
/// loop, which knows what it waited for, reports the timeout rather than the engine.
fn effective_limit(ctx: &CallContext<'_>, default: Duration) -> (Duration, bool) {
    match ctx.timeout {
        Some(limit) => (limit.saturating_sub((limit / 10).min(Duration::from_secs(5))), true),
        None => (default, false),
    }
}

/// Polls `look` until it reports ready, sleeping `interval` between looks. `started` is when
/// the provider call began: the time limit covers the whole call, not only the wait.
pub async fn until_ready<T, F, Fut>(
    ctx: &CallContext<'_>,
    change: Change,
    default_limit: Duration,
    interval: Duration,
    started: Instant,
    waiting_for: &str,
    mut look: F,
) -> Result<T, ProviderError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Poll<T>, ProviderError>>,
{
    let (limit, custom) = effective_limit(ctx, default_limit);
    let mut last = String::from("unknown");
    loop {
        match look().await? {
            Poll::Ready(value) => return Ok(value),
            Poll::Waiting(status) => {
                if status != last {
                    tracing::info!(urn = %ctx.urn, status = %status, "waiting for {waiting_for}");
                }
                last = status;
            }
        }
        let elapsed = started.elapsed();
        if elapsed >= limit {
            let source = if custom { change.option().to_string() } else { format!("the default; set {} to change it", change.option()) };
            return Err(ProviderError::timeout(format!(
                "{}: still `{last}` after {} while waiting for {waiting_for} (limit {}, {source}); AWS may still finish it: the next run checks",
                ctx.urn,
                humantime::format_duration(Duration::from_secs(elapsed.as_secs())),
                humantime::format_duration(limit),
            )));
        }
        tokio::time::sleep(interval.min(limit - elapsed)).await;
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use berth_engine::{ErrorKind, Urn};

    use super::*;

    fn ctx<'a>(urn: &'a Urn, timeout: Option<Duration>) -> CallContext<'a> {
        CallContext { urn, ty: "aws:rds:Instance", name: "db", stack: "dev", timeout }
    }

    #[tokio::test(start_paused = true)]
    async fn waits_until_ready_and_times_out_with_the_last_status() {
        let urn = Urn::new("dev", None, "aws:rds:Instance", "db").unwrap();
        let looks = Cell::new(0);
        let ready = until_ready(
            &ctx(&urn, None),
            Change::Create,
            Duration::from_secs(60),
            Duration::from_secs(5),
            Instant::now(),
            "the instance",
            || {
                looks.set(looks.get() + 1);
                let n = looks.get();
                async move { Ok(if n < 4 { Poll::Waiting("creating".into()) } else { Poll::Ready(n) }) }
            },
        )
        .await
        .unwrap();
        assert_eq!(ready, 4);

        let err = until_ready(
            &ctx(&urn, Some(Duration::from_secs(20))),
            Change::Update,
            Duration::from_secs(3600),
            Duration::from_secs(5),
            Instant::now(),
            "the modification",
            || async { Ok::<Poll<()>, ProviderError>(Poll::Waiting("modifying".into())) },
        )
        .await
        .unwrap_err();
        assert_eq!(err.kind, ErrorKind::Timeout);
        assert!(err.message.contains("still `modifying`"), "{}", err.message);
        assert!(err.message.contains("custom_timeouts.update"), "{}", err.message);
        assert!(err.message.contains(urn.as_str()), "{}", err.message);
    }
}
