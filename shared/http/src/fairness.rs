//! Fairness between tenants: each tenant has at most
//! [`TenantGates::per_tenant`] requests in progress at once in this
//! process. A request over it waits up to [`TenantGates::wait`] for a
//! place, then is answered 429 with `Retry-After`; other tenants' requests
//! never wait behind it. In Lambda a process serves one request at a
//! time, so the gate never closes there; on the local runner it keeps one
//! tenant's expensive requests from taking every worker.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lockstep_core::TenantId;
use scim_protocol::ScimError;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

pub struct TenantGates {
    pub per_tenant: usize,
    pub wait: Duration,
    gates: Mutex<HashMap<TenantId, Arc<Semaphore>>>,
}

impl TenantGates {
    pub fn new(per_tenant: usize, wait: Duration) -> Self {
        Self { per_tenant: per_tenant.max(1), wait, gates: Mutex::new(HashMap::new()) }
    }

    /// A place for one request of `tenant`, held until it is dropped; a
    /// 429 when none frees up in time.
    pub async fn enter(&self, tenant: &TenantId) -> Result<OwnedSemaphorePermit, ScimError> {
        let gate = {
            // Only authenticated tenants get here, so the map holds at most
            // one entry per tenant of the deployment.
            let mut gates = self.gates.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            Arc::clone(gates.entry(tenant.clone()).or_insert_with(|| Arc::new(Semaphore::new(self.per_tenant))))
        };
        match tokio::time::timeout(self.wait, gate.acquire_owned()).await {
            Ok(Ok(permit)) => Ok(permit),
            _ => Err(ScimError::new(
                429,
                None,
                format!(
                    "this tenant already has {} requests in progress; retry when one has finished",
                    self.per_tenant
                ),
            )),
        }
    }
}

impl Default for TenantGates {
    fn default() -> Self {
        Self::new(8, Duration::from_secs(10))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenant(id: &str) -> TenantId {
        TenantId::parse(id).unwrap_or_else(|e| panic!("{e}"))
    }

    #[tokio::test]
    async fn a_busy_tenant_waits_then_is_refused_while_others_pass() {
        let gates = TenantGates::new(2, Duration::from_millis(50));
        let (a, b) = (tenant("acme"), tenant("zinc"));
        let held = [gates.enter(&a).await, gates.enter(&a).await];
        assert!(held.iter().all(Result::is_ok));
        let refused = gates.enter(&a).await.err().unwrap_or_else(|| panic!("a third request of acme got in"));
        assert_eq!(refused.status, 429);
        assert!(refused.detail.contains("2 requests in progress"), "{}", refused.detail);
        assert!(gates.enter(&b).await.is_ok(), "another tenant is not held up");
        drop(held);
        assert!(gates.enter(&a).await.is_ok(), "places come back when requests finish");
    }
}
