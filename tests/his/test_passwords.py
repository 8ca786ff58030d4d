"""Password hashing (Argon2id) and the password policy."""

from __future__ import annotations

import pytest
from argon2 import PasswordHasher, Type, extract_parameters

from rekam.his.errors import WeakPassword
from rekam.his.passwords import (
    check_password_policy,
    generate_password,
    hash_password,
    verify_password,
)


def test_hashes_are_argon2id_with_owasp_parameters() -> None:
    stored = hash_password("Kopi-Tubruk-Pagi-7")
    params = extract_parameters(stored)
    assert params.type is Type.ID
    assert params.memory_cost >= 19_456 and params.time_cost >= 2
    # an independent Argon2 verifier accepts it
    assert PasswordHasher().verify(stored, "Kopi-Tubruk-Pagi-7")


def test_verification() -> None:
    stored = hash_password("Kopi-Tubruk-Pagi-7")
    assert verify_password(stored, "Kopi-Tubruk-Pagi-7")
    assert not verify_password(stored, "Kopi-Tubruk-Pagi-8")
    assert not verify_password(None, "Kopi-Tubruk-Pagi-7")
    assert not verify_password("not-a-hash", "x")


def test_same_password_hashes_differently() -> None:
    assert hash_password("Kopi-Tubruk-Pagi-7") != hash_password("Kopi-Tubruk-Pagi-7")


@pytest.mark.parametrize(
    ("password", "key"),
    [
        ("short1!", "password.min_length"),
        ("x" * 129 + "abcde", "password.max_length"),
        ("dr.sari-is-my-password", "password.username"),
        ("aaaaaaaaaaaaaaaa", "password.variety"),
        ("password123456", "password.common"),
        ("Bismillah2026!!", "password.common"),
    ],
)
def test_policy_refuses_weak_passwords(password: str, key: str) -> None:
    with pytest.raises(WeakPassword) as caught:
        check_password_policy(password, "dr.sari")
    assert caught.value.key == key


def test_policy_accepts_a_reasonable_passphrase() -> None:
    check_password_policy("sate-ayam-di-malioboro", "dr.sari")


def test_generated_passwords_pass_the_policy_and_differ() -> None:
    generated = {generate_password() for _ in range(20)}
    assert len(generated) == 20
    for password in generated:
        check_password_policy(password)
