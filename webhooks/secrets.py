"""Webhook signing secrets: `whsec_` + base64 of 32 random bytes (Standard Webhooks), encrypted at rest.

The secret is shown once, when the endpoint is registered; the database holds only its Fernet
ciphertext (AES-128-CBC + HMAC-SHA256), under a key derived from QMAILING_WEBHOOK_SECRET_KEY, or from
SECRET_KEY when that is not set. Delivery decrypts it to sign each request.
"""

import base64
import hashlib
import secrets

from cryptography.fernet import Fernet
from django.conf import settings

PREFIX = "whsec_"


def secret_new() -> str:
    return PREFIX + base64.b64encode(secrets.token_bytes(32)).decode("ascii")


def _fernet():
    material = settings.QMAILING_WEBHOOK_SECRET_KEY or settings.SECRET_KEY
    key = hashlib.sha256(b"qmailing-webhook-secrets\0" + material.encode("utf-8")).digest()
    return Fernet(base64.urlsafe_b64encode(key))


def secret_encrypt(secret: str) -> str:
    return _fernet().encrypt(secret.encode("ascii")).decode("ascii")


def secret_decrypt(token: str) -> str:
    return _fernet().decrypt(token.encode("ascii")).decode("ascii")
