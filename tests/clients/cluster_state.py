#!/usr/bin/env python3
"""Independent clients for the cluster-state tests (not kvault's code):
confluent-kafka's AdminClient for ACLs and SCRAM users, Kafka's own
kafka.admin.ConfigCommand (the broker's jars) for client quotas and
dynamic broker configs, and a confluent-kafka producer authenticating
with SCRAM.

usage:
  cluster_state.py setup BROKERS TAG           ACLs, SCRAM users, quotas, broker configs, topics
  cluster_state.py late-acl BROKERS TAG        one more ACL binding (User:TAG-late READ topic TAG-t)
  cluster_state.py drop-acls BROKERS PRINCIPAL delete every ACL binding of PRINCIPAL
  cluster_state.py describe BROKERS TAG        the state as JSON (only TAG's entities, and the defaults)
  cluster_state.py topics BROKERS TAG          create TAG-t and TAG-denied
  cluster_state.py produce SCRAM_BROKERS USER PASSWORD MECHANISM TOPIC
                                               prints "ok" or the error's name

The classpath of the broker's jars is read from .state/kafka/classpath.txt
(written by scripts/kafka).
"""
import json
import os
import subprocess
import sys

from confluent_kafka import KafkaError, KafkaException, Producer
from confluent_kafka.admin import (AclBinding, AclBindingFilter, AclOperation, AclPermissionType,
                                   AdminClient, NewTopic, ResourcePatternType, ResourceType,
                                   ScramCredentialInfo, ScramMechanism, UserScramCredentialUpsertion)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def config_command(brokers, *args):
    cp = open(os.path.join(ROOT, ".state/kafka/classpath.txt")).read().strip()
    out = subprocess.run(["java", "-cp", cp, "kafka.admin.ConfigCommand", "--bootstrap-server", brokers, *args],
                         capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"ConfigCommand {args}: {out.stderr[-2000:]}")
    return [l for l in out.stdout.splitlines() if l.strip()]


def wait(futures):
    for f in futures.values():
        f.result()


def setup(brokers, tag):
    a = AdminClient({"bootstrap.servers": brokers})
    wait(a.create_topics([NewTopic(f"{tag}-t", 1, 1), NewTopic(f"{tag}-denied", 1, 1)]))
    alice, bob = f"User:{tag}-alice", f"User:{tag}-bob"
    T, G, C = ResourceType.TOPIC, ResourceType.GROUP, ResourceType.BROKER
    L, P = ResourcePatternType.LITERAL, ResourcePatternType.PREFIXED
    allow, deny = AclPermissionType.ALLOW, AclPermissionType.DENY
    acls = [
        AclBinding(T, f"{tag}-t", L, alice, "*", AclOperation.WRITE, allow),
        AclBinding(T, f"{tag}-t", L, alice, "*", AclOperation.DESCRIBE, allow),
        AclBinding(T, f"{tag}-pre", P, alice, "*", AclOperation.READ, allow),
        AclBinding(T, f"{tag}-denied", L, alice, "*", AclOperation.WRITE, deny),
        AclBinding(T, f"{tag}-denied", L, alice, "*", AclOperation.DESCRIBE, allow),
        AclBinding(G, f"{tag}-g", L, alice, "*", AclOperation.READ, allow),
        AclBinding(C, "kafka-cluster", L, bob, "*", AclOperation.DESCRIBE, allow),
        AclBinding(T, f"{tag}-t", L, bob, "*", AclOperation.READ, allow),
        AclBinding(T, f"{tag}-t", L, bob, "*", AclOperation.DESCRIBE, allow),
        AclBinding(G, "*", L, bob, "*", AclOperation.DESCRIBE, allow),
    ]
    wait(a.create_acls(acls))
    ups = [
        UserScramCredentialUpsertion(f"{tag}-alice", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 8192),
                                     b"alice-pw"),
        UserScramCredentialUpsertion(f"{tag}-bob", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, 4096),
                                     b"bob-pw"),
    ]
    wait(a.alter_user_scram_credentials(ups))
    config_command(brokers, "--alter", "--add-config", "producer_byte_rate=1048576,consumer_byte_rate=2097152",
                   "--entity-type", "users", "--entity-name", f"{tag}-alice")
    config_command(brokers, "--alter", "--add-config", "request_percentage=50",
                   "--entity-type", "users", "--entity-name", f"{tag}-bob", "--entity-type", "clients",
                   "--entity-name", f"{tag}-app")
    config_command(brokers, "--alter", "--add-config", "consumer_byte_rate=4096",
                   "--entity-type", "clients", "--entity-name", f"{tag}-app")
    config_command(brokers, "--alter", "--add-config", "producer_byte_rate=99000000",
                   "--entity-type", "users", "--entity-default")
    config_command(brokers, "--alter", "--add-config", "connection_creation_rate=100",
                   "--entity-type", "ips", "--entity-name", "127.0.0.9")
    config_command(brokers, "--alter", "--add-config", "log.retention.ms=604800001,log.cleaner.threads=2",
                   "--entity-type", "brokers", "--entity-default")
    config_command(brokers, "--alter", "--add-config", "max.connections=10000",
                   "--entity-type", "brokers", "--entity-name", "1")


def late_acl(brokers, tag):
    a = AdminClient({"bootstrap.servers": brokers})
    wait(a.create_acls([AclBinding(ResourceType.TOPIC, f"{tag}-t", ResourcePatternType.LITERAL,
                                   f"User:{tag}-late", "*", AclOperation.READ, AclPermissionType.ALLOW)]))


def drop_acls(brokers, principal):
    a = AdminClient({"bootstrap.servers": brokers})
    wait(a.delete_acls([AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, principal,
                                         None, AclOperation.ANY, AclPermissionType.ANY)]))


def describe(brokers, tag):
    a = AdminClient({"bootstrap.servers": brokers})
    f = AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, None, None, AclOperation.ANY,
                         AclPermissionType.ANY)
    acls = sorted(
        [b.restype.name, b.name, b.resource_pattern_type.name, b.principal, b.host, b.operation.name,
         b.permission_type.name]
        for b in a.describe_acls(f).result() if tag in b.principal or tag in b.name)
    users = {}
    for user, fut in a.describe_user_scram_credentials([f"{tag}-alice", f"{tag}-bob"]).items():
        try:
            users[user] = sorted([i.mechanism.name, i.iterations] for i in fut.result().scram_credential_infos)
        except KafkaException as e:
            users[user] = str(e.args[0].name())
    quotas = sorted(
        l for args in (["--entity-type", "users"], ["--entity-type", "clients"],
                       ["--entity-type", "users", "--entity-type", "clients"], ["--entity-type", "ips"])
        for l in config_command(brokers, "--describe", *args) if tag in l or "default" in l or "127.0.0.9" in l)
    configs = config_command(brokers, "--describe", "--entity-type", "brokers", "--entity-default")
    configs += config_command(brokers, "--describe", "--entity-type", "brokers", "--entity-name", "1")
    print(json.dumps({"acls": acls, "scram_users": users, "quotas": quotas,
                      "broker_configs": [l.strip() for l in configs if "=" in l and "sensitive" in l]}))


def topics(brokers, tag):
    a = AdminClient({"bootstrap.servers": brokers})
    wait(a.create_topics([NewTopic(f"{tag}-t", 1, 1), NewTopic(f"{tag}-denied", 1, 1)]))


def produce(brokers, user, password, mechanism, topic):
    errors, result = [], []
    p = Producer({"bootstrap.servers": brokers, "security.protocol": "SASL_PLAINTEXT",
                  "sasl.mechanism": mechanism, "sasl.username": user, "sasl.password": password,
                  "log_level": 0, "error_cb": lambda e: errors.append(e)})
    p.produce(topic, b"v", on_delivery=lambda err, msg: result.append(err))
    # Until the delivery report, or an authentication error (which would
    # be retried for ever).
    for _ in range(40):
        p.flush(0.5)
        if result or any(e.code() == KafkaError._AUTHENTICATION for e in errors):
            break
    if result:
        print("ok" if result[0] is None else result[0].name())
    else:
        print(errors[0].name() if errors else "no-delivery-report")
    p.purge()


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    {"setup": setup, "late-acl": late_acl, "drop-acls": drop_acls, "describe": describe, "topics": topics,
     "produce": produce}[cmd](*args)
