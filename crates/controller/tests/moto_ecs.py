"""Drives moto's ECS for the controller tests.

usage: moto_ecs.py serve <port>      -> runs moto on 127.0.0.1:<port>, with the container `cpu` and
                                        `memory` of DescribeTasks sent as strings (ECS's types; moto
                                        5.2.1 sends numbers, which the Rust SDK rejects)
       moto_ecs.py setup <n_tasks>   -> prints {"cluster": arn, "tasks": [arn, ...]} (the last task
                                        has no mesh tag)
       moto_ecs.py stop <cluster> <task_arn>
Reads MOTO_URL. EC2 launch type with a registered container instance: moto 5.2.1 cannot run
FARGATE + awsvpc tasks.
"""
import json
import os
import sys

import boto3

if sys.argv[1] == "serve":
    import moto.ecs.models as models
    from moto.server import main

    original = models.Container.__init__

    def patched(self, *args, **kwargs):
        original(self, *args, **kwargs)
        for field in ("cpu", "memory"):
            value = getattr(self, field, None)
            if value is not None:
                setattr(self, field, str(value))

    models.Container.__init__ = patched
    main(["-H", "127.0.0.1", "-p", sys.argv[2]])
    sys.exit(0)

ecs = boto3.client(
    "ecs",
    endpoint_url=os.environ["MOTO_URL"],
    region_name="us-east-1",
    aws_access_key_id="testing",
    aws_secret_access_key="testing",
)

if sys.argv[1] == "setup":
    n = int(sys.argv[2])
    ec2 = boto3.client(
        "ec2",
        endpoint_url=os.environ["MOTO_URL"],
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    cluster = ecs.create_cluster(clusterName="mesh")["cluster"]["clusterArn"]
    image = ec2.describe_images()["Images"][0]["ImageId"]
    instance = ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1)["Instances"][0]
    document = json.dumps({"instanceId": instance["InstanceId"], "region": "us-east-1"})
    ecs.register_container_instance(cluster="mesh", instanceIdentityDocument=document)
    ecs.register_task_definition(
        family="web",
        containerDefinitions=[{"name": "app", "image": "app", "memory": 64}],
    )
    tasks = []
    for i in range(n):
        tags = [{"key": "consul.hashicorp.com/mesh", "value": "true"}] if i < n - 1 else []
        out = ecs.run_task(cluster="mesh", taskDefinition="web", launchType="EC2", count=1, tags=tags)
        if out.get("failures"):
            raise SystemExit(json.dumps(out["failures"]))
        tasks.append(out["tasks"][0]["taskArn"])
    print(json.dumps({"cluster": cluster, "tasks": tasks}))
elif sys.argv[1] == "stop":
    ecs.stop_task(cluster=sys.argv[2], task=sys.argv[3], reason="test")
else:
    raise SystemExit("unknown command")
