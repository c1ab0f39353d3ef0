/* The C program of make test-install: built against an installed prefix
 * with pkg-config only, it dials a consumer, sends one message and prints
 * the answer. Usage: app SOCKET MESSAGE */
#include <stdio.h>
#include <string.h>

#include <goipc.h>

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s SOCKET MESSAGE\n", argv[0]);
        return 2;
    }
    goipc_conn conn;
    int32_t st = goipc_dial(argv[1], 5000, &conn);
    if (st != GOIPC_OK) {
        fprintf(stderr, "dial: %s (%s)\n", goipc_strerror(st), goipc_last_error_message());
        return 1;
    }
    char reply[256];
    size_t n = 0;
    if ((st = goipc_send(conn, argv[2], strlen(argv[2]), 5000)) != GOIPC_OK ||
        (st = goipc_recv(conn, reply, sizeof reply, &n, 5000)) != GOIPC_OK) {
        fprintf(stderr, "round trip: %s (%s)\n", goipc_strerror(st), goipc_last_error_message());
        goipc_conn_close(conn);
        return 1;
    }
    printf("%.*s\n", (int)n, reply);
    return goipc_conn_close(conn) == GOIPC_OK ? 0 : 1;
}
