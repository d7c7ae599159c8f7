# Prepares moto for the login tests (run by tests/moto_login.rs with MOTO_URL set).
#
# moto runs with INITIAL_NO_AUTH_ACTION_COUNT=4: the first four calls below (create an admin user,
# an allow-all policy, attach it, create an access key) pass unauthenticated; every later call,
# including the test's own, has its SigV4 signature and IAM policies checked.
#
# Then, as the admin: create a role under /consul-ecs/ tagged with a service name, allow it to read
# roles, assume it, and print the session credentials and ARNs as JSON on stdout.
import json
import os

import boto3

url = os.environ["MOTO_URL"]


def client(service, key="bootstrap", secret="bootstrap"):
    return boto3.client(service, endpoint_url=url, region_name="us-east-1",
                        aws_access_key_id=key, aws_secret_access_key=secret)


iam = client("iam")
iam.create_user(UserName="admin")
allow_all = {"Version": "2012-10-17",
             "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
policy = iam.create_policy(PolicyName="admin", PolicyDocument=json.dumps(allow_all))
iam.attach_user_policy(UserName="admin", PolicyArn=policy["Policy"]["Arn"])
key = iam.create_access_key(UserName="admin")["AccessKey"]

iam = client("iam", key["AccessKeyId"], key["SecretAccessKey"])
trust = {"Version": "2012-10-17",
         "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                        "Principal": {"AWS": "arn:aws:iam::123456789012:user/admin"}}]}
role = iam.create_role(RoleName="consul-ecs-app", Path="/consul-ecs/",
                       AssumeRolePolicyDocument=json.dumps(trust),
                       Tags=[{"Key": "consul.hashicorp.com.service-name", "Value": "app"}])["Role"]
read_roles = {"Version": "2012-10-17",
              "Statement": [{"Effect": "Allow", "Action": "iam:GetRole", "Resource": "*"}]}
iam.put_role_policy(RoleName="consul-ecs-app", PolicyName="read-roles",
                    PolicyDocument=json.dumps(read_roles))

sts = client("sts", key["AccessKeyId"], key["SecretAccessKey"])
assumed = sts.assume_role(RoleArn=role["Arn"], RoleSessionName="task-0123")
creds = assumed["Credentials"]
print(json.dumps({
    "AccessKeyId": creds["AccessKeyId"],
    "SecretAccessKey": creds["SecretAccessKey"],
    "SessionToken": creds["SessionToken"],
    "RoleArn": role["Arn"],
    "AssumedRoleArn": assumed["AssumedRoleUser"]["Arn"],
}))
