"""The README's walk-through, through the Python client openapi-python-client generated from
openapi/openapi.json (tests/clients/run.sh puts it on PYTHONPATH as `ledger_client`).

    BASE=http://127.0.0.1:8080 ADMIN=lk_... python3 tests/clients/scenario.py

Every response is the generated model of its status (a `Problem` for every refusal); the script
fails (an AssertionError naming the step) at the first answer that differs from the README's.
"""

import datetime
import os
import uuid

from ledger_client import AuthenticatedClient
from ledger_client.api.accounts import get_account, open_account
from ledger_client.api.api_keys import create_api_key
from ledger_client.api.audit import entries
from ledger_client.api.ledgers import create_ledger
from ledger_client.api.transfers import (
    create_transfer,
    list_transfers,
    post_transfer,
    reverse_transfer,
    void_transfer,
)
from ledger_client.models import (
    AccountBody,
    AccountStatus,
    CreateApiKeyRequest,
    CreateLedgerRequest,
    CreateTransferRequest,
    EntryBody,
    LedgerBody,
    NormalSideBody,
    OpenAccountRequest,
    PageBodyEntryBody,
    PageBodyTransferBody,
    PostTransferRequest,
    Problem,
    ProblemEntity,
    ReverseTransferRequest,
    RoleBody,
    TransferBody,
    TransferState,
)

BASE = os.environ["BASE"]
LEDGER = "main"


def key() -> str:
    return str(uuid.uuid4())


def expect(response, status: int, model: type, step: str):
    """The parsed body of `response`, which must have `status` and parse as `model`."""
    assert response.status_code == status, (
        f"{step}: expected {status}, got {response.status_code}: {response.content!r}"
    )
    assert isinstance(response.parsed, model), (
        f"{step}: expected a {model.__name__}, got {type(response.parsed).__name__}"
    )
    assert response.headers.get("x-request-id"), f"{step}: no X-Request-Id"
    return response.parsed


def expect_problem(response, status: int, code: str, step: str) -> Problem:
    problem = expect(response, status, Problem, step)
    assert problem.code == code, f"{step}: expected {code}, got {problem.code}: {problem.detail}"
    assert problem.status == status and problem.type_ == f"urn:ledger:problem:{code}", step
    assert problem.request_id == response.headers["x-request-id"], step
    assert response.headers["content-type"].startswith("application/problem+json"), step
    return problem


admin = AuthenticatedClient(base_url=BASE, token=os.environ["ADMIN"])

# A key for a payments service (writes transfers).
created = expect(
    create_api_key.sync_detailed(
        client=admin,
        body=CreateApiKeyRequest(name="payments", role=RoleBody.WRITER),
        idempotency_key=key(),
    ),
    201,
    create_api_key.ApiKeyBody,
    "create a writer key",
)
assert created.role == RoleBody.WRITER and isinstance(created.created_at, datetime.datetime)
writer = AuthenticatedClient(base_url=BASE, token=created.token)

# A ledger, a funding account and a wallet that cannot be overdrawn (admin).
ledger = expect(
    create_ledger.sync_detailed(
        client=admin, body=CreateLedgerRequest(name=LEDGER), idempotency_key=key()
    ),
    201,
    LedgerBody,
    "create the ledger",
)
assert ledger.name == LEDGER


def open_(code: str, side: NormalSideBody, **constraints) -> AccountBody:
    response = open_account.sync_detailed(
        LEDGER,
        client=admin,
        body=OpenAccountRequest(code=code, currency="EUR", normal_side=side, **constraints),
        idempotency_key=key(),
    )
    account = expect(response, 201, AccountBody, f"open {code}")
    assert response.headers["location"] == f"/v1/ledgers/{LEDGER}/accounts/{account.id}"
    assert account.status == AccountStatus.ACTIVE
    return account


world = open_("world", NormalSideBody.DEBIT)
alice = open_(
    "customer:alice:wallet", NormalSideBody.CREDIT, debits_must_not_exceed_credits=True
)

# Move 25.00 EUR into Alice's wallet with an Idempotency-Key (writer).
top_up = CreateTransferRequest(
    debit_account_id=world.id,
    credit_account_id=alice.id,
    amount="25.00",
    currency="EUR",
    reference="top-up-1",
)
first = create_transfer.sync_detailed(
    LEDGER, client=writer, body=top_up, idempotency_key="top-up-alice-1"
)
transfer = expect(first, 201, TransferBody, "the top-up")
assert transfer.state == TransferState.POSTED and transfer.amount == "25.00"
assert isinstance(transfer.created_at, datetime.datetime)
assert "idempotent-replayed" not in first.headers

# The same key and body again: the same answer, byte for byte, marked as a replay.
replay = create_transfer.sync_detailed(
    LEDGER, client=writer, body=top_up, idempotency_key="top-up-alice-1"
)
assert expect(replay, 201, TransferBody, "the replay").id == transfer.id
assert replay.content == first.content, "a replay is the original body"
assert replay.headers["idempotent-replayed"] == "true"

# The same key with another body: refused, and nothing moves.
other = CreateTransferRequest.from_dict({**top_up.to_dict(), "amount": "26.00"})
expect_problem(
    create_transfer.sync_detailed(
        LEDGER, client=writer, body=other, idempotency_key="top-up-alice-1"
    ),
    422,
    "idempotency_key_reused",
    "the key reused with another body",
)

# Overdrawing the wallet is refused; the problem names the account (an extension member).
overdraw = CreateTransferRequest(
    debit_account_id=alice.id, credit_account_id=world.id, amount="30.00", currency="EUR"
)
refusal = expect_problem(
    create_transfer.sync_detailed(LEDGER, client=writer, body=overdraw, idempotency_key=key()),
    422,
    "insufficient_funds",
    "the overdraft",
)
assert refusal.account_id == alice.id

# Balances, the account's transfers and its entries.
balances = expect(
    get_account.sync_detailed(LEDGER, alice.id, client=writer), 200, AccountBody, "balances"
)
assert (balances.posted_balance, balances.available_balance) == ("25.00", "25.00")
page = expect(
    list_transfers.sync_detailed(LEDGER, client=writer, account_id=alice.id),
    200,
    PageBodyTransferBody,
    "the account's transfers",
)
assert [item.id for item in page.data] == [transfer.id]
assert all(isinstance(item, TransferBody) for item in page.data)
posted = expect(
    entries.sync_detailed(LEDGER, alice.id, client=writer), 200, PageBodyEntryBody, "entries"
)
assert all(isinstance(entry, EntryBody) for entry in posted.data)
assert [(entry.side, entry.posted_balance) for entry in posted.data] == [
    (NormalSideBody.CREDIT, "25.00")
]

# A pending transfer reserves 20.00; posting 15.00 of it releases the rest.
hold = expect(
    create_transfer.sync_detailed(
        LEDGER,
        client=writer,
        body=CreateTransferRequest(
            debit_account_id=alice.id,
            credit_account_id=world.id,
            amount="20.00",
            currency="EUR",
            pending=True,
            timeout_seconds=3600,
        ),
        idempotency_key=key(),
    ),
    201,
    TransferBody,
    "the hold",
)
assert hold.state == TransferState.PENDING and isinstance(hold.expires_at, datetime.datetime)
reserved = expect(
    get_account.sync_detailed(LEDGER, alice.id, client=writer), 200, AccountBody, "reserved"
)
assert (reserved.pending_debits, reserved.available_balance) == ("20.00", "5.00")
hold = expect(
    post_transfer.sync_detailed(
        LEDGER,
        hold.id,
        client=writer,
        body=PostTransferRequest(amount="15.00"),
        idempotency_key=key(),
    ),
    200,
    TransferBody,
    "post 15.00 of the hold",
)
assert (hold.state, hold.posted_amount) == (TransferState.POSTED, "15.00")

# A pending transfer posted in full: the optional body left out.
small = expect(
    create_transfer.sync_detailed(
        LEDGER,
        client=writer,
        body=CreateTransferRequest(
            debit_account_id=alice.id,
            credit_account_id=world.id,
            amount="1.00",
            currency="EUR",
            pending=True,
        ),
        idempotency_key=key(),
    ),
    201,
    TransferBody,
    "a second hold",
)
small = expect(
    post_transfer.sync_detailed(LEDGER, small.id, client=writer, idempotency_key=key()),
    200,
    TransferBody,
    "post a hold without a body",
)
assert (small.state, small.posted_amount) == (TransferState.POSTED, "1.00")

# Reverse 5.00 of the posted hold: a new transfer, debit and credit swapped.
response = reverse_transfer.sync_detailed(
    LEDGER,
    hold.id,
    client=writer,
    body=ReverseTransferRequest(amount="5.00"),
    idempotency_key=key(),
)
reversal = expect(response, 201, TransferBody, "the reversal")
assert reversal.reverses == hold.id and reversal.amount == "5.00"
assert (reversal.debit_account_id, reversal.credit_account_id) == (world.id, alice.id)
assert response.headers["location"] == f"/v1/ledgers/{LEDGER}/transfers/{reversal.id}"

# Voiding a posted transfer is not a transition: the problem names it.
problem = expect_problem(
    void_transfer.sync_detailed(LEDGER, hold.id, client=writer, idempotency_key=key()),
    409,
    "invalid_state_transition",
    "void a posted transfer",
)
assert (problem.entity, problem.from_, problem.to, problem.action) == (
    ProblemEntity.TRANSFER,
    "posted",
    "voided",
    "void",
), problem.to_dict()

final = expect(
    get_account.sync_detailed(LEDGER, alice.id, client=writer), 200, AccountBody, "the end"
)
# 25.00 in, 15.00 + 1.00 out, 5.00 back.
assert (final.posted_balance, final.available_balance) == ("14.00", "14.00"), final.to_dict()
print("python client: the README's scenario passed")
