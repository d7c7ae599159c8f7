# Prepares moto for the aws-iam login tests (tests/acl_aws.rs runs it with MOTO_URL set).
#
# moto runs with INITIAL_NO_AUTH_ACTION_COUNT=4: the first four calls (admin user, allow-all policy,
# attachment, access key) pass unauthenticated; every later call is signature-checked.
#
# As the admin, it creates two roles allowed to read roles: "web-task" under /consul-ecs/ (inside the
# auth method's bound ARN pattern) and "stray-task" under /other/ (outside it), both tagged with the
# service name "web"; assumes each and prints the session credentials and ARNs as JSON.
import json
import os

import boto3

url = os.environ["MOTO_URL"]


def client(service, key="bootstrap", secret="bootstrap", token=None):
    return boto3.client(service, endpoint_url=url, region_name="us-east-1",
                        aws_access_key_id=key, aws_secret_access_key=secret,
                        aws_session_token=token)


iam = client("iam")
iam.create_user(UserName="admin")
allow_all = {"Version": "2012-10-17",
             "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
policy = iam.create_policy(PolicyName="admin", PolicyDocument=json.dumps(allow_all))
iam.attach_user_policy(UserName="admin", PolicyArn=policy["Policy"]["Arn"])
key = iam.create_access_key(UserName="admin")["AccessKey"]

iam = client("iam", key["AccessKeyId"], key["SecretAccessKey"])
sts = client("sts", key["AccessKeyId"], key["SecretAccessKey"])
trust = {"Version": "2012-10-17",
         "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                        "Principal": {"AWS": "arn:aws:iam::123456789012:user/admin"}}]}
read_roles = {"Version": "2012-10-17",
              "Statement": [{"Effect": "Allow", "Action": "iam:GetRole", "Resource": "*"}]}
out = {}
for name, path in [("web-task", "/consul-ecs/"), ("stray-task", "/other/")]:
    role = iam.create_role(RoleName=name, Path=path,
                           AssumeRolePolicyDocument=json.dumps(trust),
                           Tags=[{"Key": "consul.hashicorp.com.service-name", "Value": "web"}])["Role"]
    iam.put_role_policy(RoleName=name, PolicyName="read-roles",
                        PolicyDocument=json.dumps(read_roles))
    creds = sts.assume_role(RoleArn=role["Arn"], RoleSessionName="task-0123")["Credentials"]
    out[name] = {"AccessKeyId": creds["AccessKeyId"], "SecretAccessKey": creds["SecretAccessKey"],
                 "SessionToken": creds["SessionToken"], "RoleArn": role["Arn"]}
print(json.dumps(out))
