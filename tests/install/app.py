"""The Python program of make test-install, run by a fresh venv's python
(outside the repository, no environment variable) that installed the
wheel: it dials a consumer, sends one message and prints the answer and
the library it loaded. Usage: app.py SOCKET MESSAGE"""

import sys

import goipc

with goipc.dial(sys.argv[1], timeout=5.0) as conn:
    conn.send(sys.argv[2].encode())
    print(conn.recv(timeout=5.0).decode())
print(goipc.library_path())
