"""Applies the access matrix (shared/kafka/acl_matrix.py) to a secured cluster,
idempotently: the ACLs it lacks are created, and the ACLs of the matrix's
principals that it does not list are deleted, so the cluster grants exactly it.

    python -m shared.kafka.acls

Run as a super user: `make infra-up` runs it as `admin` under KAFKA_SECURED=1,
after the topics are provisioned. Environment: KAFKA_BOOTSTRAP_SERVERS and the
KAFKA_SECURITY_PROTOCOL / KAFKA_SASL_* variables (shared/kafka/security.py).

aiokafka's admin client has no ACL methods, so the requests are sent as they are:
version 1 of CreateAcls, DescribeAcls and DeleteAcls, the oldest Kafka 4 takes.
"""

import asyncio
import logging
import os
import sys
import time
from collections.abc import Collection, Mapping
from typing import Any, NamedTuple

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import for_code
from aiokafka.protocol.admin import CreateAclsRequest_v1, DeleteAclsRequest_v1, DescribeAclsRequest
from aiokafka.protocol.api import Request

from shared.kafka.acl_matrix import MATRIX, Access, Grant, Operation, Resource, grants
from shared.kafka.security import security_options

_ANY = 1  # the wildcard of every filter code (resource, pattern, operation, permission)
_ALLOW = 3
_ALL_HOSTS = "*"
_SECURITY_DISABLED = 54

log = logging.getLogger("shared.kafka.acls")


class AclError(Exception):
    """The cluster's ACLs cannot be made to match the matrix."""


class Acl(NamedTuple):
    """One ACL as the protocol carries it."""

    resource: int
    name: str
    pattern: int
    principal: str
    host: str
    operation: int
    permission: int

    @classmethod
    def of(cls, grant: Grant) -> "Acl":
        return cls(
            grant.resource,
            grant.name,
            grant.pattern,
            grant.principal,
            _ALL_HOSTS,
            grant.operation,
            _ALLOW,
        )

    def __str__(self) -> str:
        def named(kind: type[Resource] | type[Operation], code: int) -> str:
            return kind(code).name if code in kind._value2member_map_ else str(code)

        verdict = "allow" if self.permission == _ALLOW else "deny"
        return (
            f"{self.principal} {verdict} {named(Operation, self.operation)} on "
            f"{named(Resource, self.resource)} {self.name}{'*' if self.pattern == 4 else ''}"
            f"{'' if self.host == _ALL_HOSTS else ' from ' + self.host}"
        )


class _CreateAcls(Request[CreateAclsRequest_v1]):  # type: ignore[misc]  # untyped
    """Every creation in one request (aiokafka's CreateAclsRequest carries one)."""

    API_KEY = 30

    def __init__(self, acls: Collection[Acl]) -> None:
        self._acls = acls

    def build(self, request_struct_class: type[CreateAclsRequest_v1]) -> CreateAclsRequest_v1:
        return request_struct_class([tuple(acl) for acl in self._acls])


class _DeleteAcls(Request[DeleteAclsRequest_v1]):  # type: ignore[misc]  # untyped
    """Every deletion in one request, each filter matching exactly one ACL."""

    API_KEY = 31

    def __init__(self, acls: Collection[Acl]) -> None:
        self._acls = acls

    def build(self, request_struct_class: type[DeleteAclsRequest_v1]) -> DeleteAclsRequest_v1:
        return request_struct_class([tuple(acl) for acl in self._acls])


def _raise_for(code: int, message: str | None, doing: str) -> None:
    if code == 0:
        return
    detail = message or for_code(code).__name__
    if code == _SECURITY_DISABLED:
        detail += " (the cluster has no authorizer: is it the secured one?)"
    raise AclError(f"{doing} failed: {detail}")


async def _existing(admin: Any, principals: Collection[str], node: int | None = None) -> set[Acl]:
    response = await admin._send_request(
        DescribeAclsRequest(_ANY, None, _ANY, None, None, _ANY, _ANY), node
    )
    _raise_for(response.error_code, response.error_message, "describing the ACLs")
    return {
        Acl(resource, name, pattern, *acl)
        for resource, name, pattern, acls in response.resources
        for acl in acls
        if acl[0] in principals
    }


async def apply_acls(
    bootstrap: str, matrix: Mapping[str, Access] = MATRIX
) -> tuple[list[Acl], list[Acl]]:
    """Makes the cluster grant the matrix's principals exactly the matrix; returns the
    ACLs created and those deleted."""
    wanted = {Acl.of(grant) for grant in grants(matrix)}
    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap, client_id="consent-acls", **security_options()
    )
    await admin.start()
    try:
        existing = await _existing(admin, {f"User:{name}" for name in matrix})
        missing, extra = sorted(wanted - existing), sorted(existing - wanted)
        if missing:
            created = await admin._send_request(_CreateAcls(missing))
            for acl, (code, message) in zip(missing, created.creation_responses, strict=True):
                _raise_for(code, message, f"creating {acl}")
        if extra:
            deleted = await admin._send_request(_DeleteAcls(extra))
            for acl, (code, message, _) in zip(extra, deleted.filter_responses, strict=True):
                _raise_for(code, message, f"deleting {acl}")
        if missing or extra:
            await _until_every_broker_has(admin, wanted, {f"User:{name}" for name in matrix})
    finally:
        await admin.close()
    return missing, extra


async def _until_every_broker_has(
    admin: Any, wanted: set[Acl], principals: set[str], timeout_s: float = 30
) -> None:
    """The controller acknowledges a change before the brokers apply it from the
    metadata log: a client starting at once would still be refused (measured: a
    producer's InitProducerId, right after its first Write ACL). Each broker
    answers DescribeAcls from the ACLs it enforces."""
    deadline = time.monotonic() + timeout_s
    for broker in admin._client.cluster.brokers():
        while await _existing(admin, principals, broker.nodeId) != wanted:
            if time.monotonic() > deadline:
                raise AclError(f"broker {broker.nodeId} did not apply the ACLs in {timeout_s:.0f}s")
            await asyncio.sleep(0.1)


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="[acls] %(message)s", stream=sys.stderr)
    # aiokafka logs connection failures itself at ERROR; our message says it once.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS") or "localhost:9092"
    try:
        created, deleted = asyncio.run(apply_acls(bootstrap))
    except Exception as exc:  # authentication, authorisation, connection: one clear line
        reason = str(exc) if isinstance(exc, AclError) else f"{type(exc).__name__}: {exc}"
        log.error("ERROR: applying the ACLs on %s failed: %s", bootstrap, reason)
        return 1
    for acl in created:
        log.info("created: %s", acl)
    for acl in deleted:
        log.info("deleted (not in the matrix): %s", acl)
    log.info("%d ACLs for %s on %s", len(grants()), ", ".join(MATRIX), bootstrap)
    return 0


if __name__ == "__main__":
    sys.exit(main())
