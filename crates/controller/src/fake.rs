//! An in-memory [`EcsApi`] for tests and benchmarks: a task list with ECS's paging, filters and
//! statuses, including tasks that are stopping (desired STOPPED, last status not yet STOPPED), which
//! moto cannot show because its StopTask stops a task at once.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use crate::ecs::{DesiredStatus, EcsApi, EcsError, EcsTask, TaskPage};

/// ListTasks page size (ECS's default).
const PAGE: usize = 100;

/// An in-memory cluster.
#[derive(Debug, Default)]
pub struct FakeEcs {
    tasks: Mutex<BTreeMap<String, EcsTask>>,
    calls: AtomicU32,
    fail: AtomicBool,
    throttle: AtomicBool,
}

impl FakeEcs {
    /// An empty cluster.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a running task with the given tags.
    pub fn run(&self, arn: &str, tags: &[(&str, &str)]) {
        let task = EcsTask {
            arn: arn.to_owned(),
            last_status: "RUNNING".into(),
            desired_status: "RUNNING".into(),
            tags: tags
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        };
        self.lock().insert(arn.to_owned(), task);
    }

    /// Marks a task as stopping: desired STOPPED, last status DEACTIVATING.
    pub fn begin_stop(&self, arn: &str) {
        if let Some(t) = self.lock().get_mut(arn) {
            t.desired_status = "STOPPED".into();
            t.last_status = "DEACTIVATING".into();
        }
    }

    /// Marks a task as stopped.
    pub fn stop(&self, arn: &str) {
        if let Some(t) = self.lock().get_mut(arn) {
            t.desired_status = "STOPPED".into();
            t.last_status = "STOPPED".into();
        }
    }

    /// Forgets a task entirely (ECS drops stopped tasks after a while).
    pub fn forget(&self, arn: &str) {
        self.lock().remove(arn);
    }

    /// Makes every call fail (`fail`) or be throttled (`throttle`) until reset.
    pub fn set_failing(&self, fail: bool, throttle: bool) {
        self.fail.store(fail, Ordering::SeqCst);
        self.throttle.store(throttle, Ordering::SeqCst);
    }

    /// Calls made so far.
    pub fn calls(&self) -> u32 {
        self.calls.load(Ordering::SeqCst)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, EcsTask>> {
        self.tasks.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn check(&self, operation: &'static str) -> Result<(), EcsError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if self.throttle.load(Ordering::SeqCst) {
            return Err(EcsError::Throttled {
                operation,
                message: "ThrottlingException: Rate exceeded".into(),
            });
        }
        if self.fail.load(Ordering::SeqCst) {
            return Err(EcsError::Call {
                operation,
                message: "injected failure".into(),
            });
        }
        Ok(())
    }
}

impl EcsApi for FakeEcs {
    async fn list_tasks(
        &self,
        _cluster: &str,
        desired: DesiredStatus,
        next_token: Option<String>,
    ) -> Result<TaskPage, EcsError> {
        self.check("ListTasks")?;
        let want = match desired {
            DesiredStatus::Running => "RUNNING",
            DesiredStatus::Stopped => "STOPPED",
        };
        let start: usize = match next_token {
            None => 0,
            Some(t) => t.parse().map_err(|_| EcsError::Call {
                operation: "ListTasks",
                message: format!("bad nextToken {t:?}"),
            })?,
        };
        let tasks = self.lock();
        let matching: Vec<String> = tasks
            .values()
            .filter(|t| t.desired_status == want)
            .skip(start)
            .take(PAGE + 1)
            .map(|t| t.arn.clone())
            .collect();
        let more = matching.len() > PAGE;
        Ok(TaskPage {
            arns: matching.into_iter().take(PAGE).collect(),
            next_token: more.then(|| (start + PAGE).to_string()),
        })
    }

    async fn describe_tasks(
        &self,
        _cluster: &str,
        arns: &[String],
    ) -> Result<Vec<EcsTask>, EcsError> {
        self.check("DescribeTasks")?;
        let tasks = self.lock();
        Ok(arns.iter().filter_map(|a| tasks.get(a).cloned()).collect())
    }
}
