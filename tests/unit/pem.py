"""PEM markers for tests that need a header or a deliberately broken block, never real key material."""


def pem_begin(label: str) -> str:
    return f"-----BEGIN {label}-----"


def pem_block(label: str, body: str) -> str:
    return f"{pem_begin(label)}\n{body}\n-----END {label}-----\n"
