//! consul-ecs health-sync: mirrors the ECS health of a task's containers into Consul checks.
