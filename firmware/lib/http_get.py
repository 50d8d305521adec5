"""HTTP/1.0 GET over the board's sockets (http:// only: no TLS on the board), for firmware
and model updates; board.py loads it for those only (the heap is small).

    fetch_range(open_socket, url, offset, n)     (status, body): n bytes from offset (Range)
    fetch(open_socket, url, path, max_bytes)     streamed into a file; the body's SHA-256
"""


def fetch_range(open_socket, url, offset, n):
    """(status, body) of an HTTP/1.0 GET of `n` bytes of url from `offset` (Range), for
    ota.Ota.step; n is one flash block, so the body fits the heap."""
    if not url.startswith("http://"):
        return 400, b""
    hostport, _, rest = url[7:].partition("/")
    host, _, port = hostport.partition(":")
    s = open_socket(host, int(port or 80))
    try:
        req = "GET /%s HTTP/1.0\r\nHost: %s\r\nRange: bytes=%d-%d\r\n\r\n"
        s.write((req % (rest, host, offset, offset + n - 1)).encode())
        data = b""
        while True:
            chunk = s.recv(1024)
            if not chunk:
                break
            data += chunk
            if len(data) > n + 4096:
                break
    finally:
        s.close()
    head, _, body = data.partition(b"\r\n\r\n")
    try:
        status = int(head[9:12])
    except ValueError:
        return 0, b""
    if status == 200:  # the server ignored Range
        body = body[offset : offset + n]
    return status, body[:n]

def fetch(open_socket, url, path, max_bytes):
    """HTTP/1.0 GET of url (http:// only) streamed into the file `path`, at most max_bytes;
    the body's SHA-256 (the body never sits in the heap whole)."""
    import hashlib

    if not url.startswith("http://"):
        raise ValueError("url must be http://")
    hostport, _, rest = url[7:].partition("/")
    host, _, port = hostport.partition(":")
    s = open_socket(host, int(port or 80))
    digest = hashlib.sha256()
    size = 0
    try:
        s.write(("GET /%s HTTP/1.0\r\nHost: %s\r\n\r\n" % (rest, host)).encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = s.recv(256)
            if not chunk or len(head) > 4096:
                raise ValueError("no HTTP response header")
            head += chunk
        head, _, body = head.partition(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.") or head[9:12] != b"200":
            raise ValueError("HTTP status %s" % head[9:12].decode())
        with open(path, "wb") as f:
            while True:  # until the server closes (HTTP/1.0)
                size += len(body)
                if size > max_bytes:
                    raise ValueError("larger than %d bytes" % max_bytes)
                digest.update(body)
                f.write(body)
                body = s.recv(1024)
                if not body:
                    break
    finally:
        s.close()
    return digest.digest()
