"""PEM blocks for tests that need a marker or a deliberately broken block, never real key material."""


def pem_block(label: str, body: str) -> str:
    return f"-----BEGIN {label}-----\n{body}\n-----END {label}-----\n"
