//! Network resilience (`service.networkResilienceConfig.enabled`): make sure the service's
//! `service-defaults` entry gives every upstream a passive health check (outlier detection).
//!
//! The existing entry is kept whole; only a missing `UpstreamConfig.Defaults.PassiveHealthCheck` is
//! filled in, from `outlierDetection` (with its defaults). A passive health check already there is never
//! changed, so operators stay in charge. The write is retried a few times, as upstream does.

use std::time::Duration;

use consul_client::config_entry::{
    ConfigEntry, PassiveHealthCheck, SERVICE_DEFAULTS, ServiceDefaults, UpstreamConfig,
    UpstreamConfiguration,
};
use consul_client::{Client, NanosDuration, QueryOptions, RetryPolicy, WriteOptions};
use consul_ecs_config::OutlierDetection;
use tokio_util::sync::CancellationToken;

use crate::Error;

/// Attempts at the write in all (upstream: the first plus 5 retries, 1 s apart).
pub const WRITE_ATTEMPTS: u32 = 6;
/// Wait between write attempts.
pub const WRITE_BACKOFF: Duration = Duration::from_secs(1);

/// The entry to write, or `None` when the existing one already has a passive health check.
pub fn merge(
    existing: Option<ServiceDefaults>,
    name: &str,
    namespace: &str,
    partition: &str,
    outlier: &OutlierDetection,
) -> Option<ServiceDefaults> {
    let mut entry = existing.unwrap_or_else(|| ServiceDefaults {
        name: name.to_owned(),
        namespace: namespace.to_owned(),
        partition: partition.to_owned(),
        ..ServiceDefaults::default()
    });
    let defaults = entry
        .upstream_config
        .get_or_insert_with(UpstreamConfiguration::default)
        .defaults
        .get_or_insert_with(UpstreamConfig::default);
    if defaults.passive_health_check.is_some() {
        return None;
    }
    defaults.passive_health_check = Some(passive_health_check(outlier));
    Some(entry)
}

/// The passive health check for `outlierDetection`. Zero values are left out, as Go's `omitempty`
/// leaves them out.
pub fn passive_health_check(outlier: &OutlierDetection) -> PassiveHealthCheck {
    PassiveHealthCheck {
        interval: (!outlier.interval.is_zero()).then_some(NanosDuration(outlier.interval)),
        max_failures: outlier.max_failures,
        enforcing_consecutive_5xx: outlier.enforcing_consecutive_5xx,
        consecutive_5xx: outlier.consecutive_5xx,
        consecutive_gateway_failure: outlier.consecutive_gateway_failure,
        enforcing_consecutive_gateway_failure: Some(outlier.enforcing_consecutive_gateway_failure),
        max_ejection_percent: Some(outlier.max_ejection_percent),
        ..PassiveHealthCheck::default()
    }
}

/// Reads the entry, merges, and writes it back when something was added.
pub async fn upsert(
    client: &Client,
    name: &str,
    namespace: &str,
    partition: &str,
    outlier: &OutlierDetection,
    cancel: &CancellationToken,
) -> Result<(), Error> {
    let found = client
        .config_entries()
        .get(SERVICE_DEFAULTS, name, &QueryOptions::default())
        .await;
    let existing = match found {
        Ok(response) => match response.value {
            Some(ConfigEntry::ServiceDefaults(entry)) => Some(entry),
            _ => None,
        },
        Err(err) if is_not_found(&err) => None,
        Err(err) => {
            return Err(Error::consul(
                format!("failed to fetch existing service defaults for service {name:?}"),
                err,
            ));
        }
    };
    let Some(entry) = merge(existing, name, namespace, partition, outlier) else {
        tracing::info!(
            service = name,
            "service-defaults already has a passive health check"
        );
        return Ok(());
    };
    let entry = ConfigEntry::ServiceDefaults(entry);
    let policy = RetryPolicy::new(WRITE_BACKOFF, WRITE_BACKOFF).with_max_attempts(WRITE_ATTEMPTS);
    let options = WriteOptions::default();
    let applied = policy
        .run(cancel, || client.config_entries().set(&entry, &options))
        .await
        .map_err(|e| match e {
            consul_client::Error::Cancelled => {
                Error::Interrupted("writing service-defaults".to_owned())
            }
            e => Error::consul(format!("writing service-defaults for {name:?}"), e),
        })?;
    if !applied {
        return Err(Error::ServiceDefaultsRefused);
    }
    tracing::info!(
        service = name,
        "service-defaults has a passive health check"
    );
    Ok(())
}

/// Consul's "no such entry" answers, whatever their status code.
fn is_not_found(err: &consul_client::Error) -> bool {
    err.is_not_found()
        || err.message().is_some_and(|m| {
            let m = m.to_ascii_lowercase();
            m.contains("not found") || m.contains("no such config entry")
        })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn defaults_fill_a_new_entry() {
        let entry = merge(None, "web", "", "", &OutlierDetection::default()).unwrap();
        assert_eq!(
            serde_json::to_value(ConfigEntry::ServiceDefaults(entry)).unwrap(),
            serde_json::json!({
                "Kind": "service-defaults",
                "Name": "web",
                "UpstreamConfig": {"Defaults": {"PassiveHealthCheck": {
                    "Interval": 10_000_000_000u64,
                    "MaxFailures": 5,
                    "EnforcingConsecutiveGatewayFailure": 100,
                    "MaxEjectionPercent": 50,
                }}},
            })
        );
    }

    #[test]
    fn given_values_are_used_as_they_are_and_an_existing_check_is_kept() {
        let outlier = OutlierDetection {
            interval: Duration::ZERO,
            max_failures: 0,
            enforcing_consecutive_5xx: Some(7),
            consecutive_5xx: Some(3),
            enforcing_consecutive_gateway_failure: 100,
            consecutive_gateway_failure: Some(2),
            max_ejection_percent: 20,
        };
        let existing = ServiceDefaults {
            name: "web".into(),
            protocol: "http".into(),
            ..ServiceDefaults::default()
        };
        let entry = merge(Some(existing), "web", "", "", &outlier).unwrap();
        assert_eq!(entry.protocol, "http");
        let check = serde_json::to_value(
            entry
                .upstream_config
                .unwrap()
                .defaults
                .unwrap()
                .passive_health_check
                .unwrap(),
        )
        .unwrap();
        assert_eq!(
            check,
            serde_json::json!({
                "MaxFailures": 0,
                "EnforcingConsecutive5xx": 7,
                "Consecutive5xx": 3,
                "ConsecutiveGatewayFailure": 2,
                "EnforcingConsecutiveGatewayFailure": 100,
                "MaxEjectionPercent": 20,
            })
        );

        let with_check = ServiceDefaults {
            upstream_config: Some(UpstreamConfiguration {
                defaults: Some(UpstreamConfig {
                    passive_health_check: Some(PassiveHealthCheck::default()),
                    ..UpstreamConfig::default()
                }),
                ..UpstreamConfiguration::default()
            }),
            ..ServiceDefaults::default()
        };
        assert!(merge(Some(with_check), "web", "", "", &outlier).is_none());
    }
}
