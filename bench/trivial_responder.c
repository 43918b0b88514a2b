/*
 * trivial_responder.c - the "ceiling" of bench/token-rate.
 *
 * A FastCGI responder that does as little as a FastCGI application can: it
 * accepts one request at a time with libfcgi's FCGX_Accept_r (the same
 * library and the same one-connection-at-a-time model as tokend's workers),
 * reads the whole request body, and answers 200 with a fixed JSON body of
 * exactly BODY_BYTES bytes and the same headers tokend sends with a token
 * (Content-Type, Content-Length, Cache-Control: no-store, Pragma: no-cache).
 * nginx in front of it, on the same machine, therefore costs what it costs
 * in front of tokend, and the ratio tokend / responder is the share of the
 * reachable rate that tokend achieves.
 *
 * Usage: spawn-fcgi -s SOCK -F N -M 0666 -- trivial_responder BODY_BYTES
 *    or: spawn-fcgi -n -s SOCK -M 0666 -- trivial_responder BODY_BYTES N
 * The listening socket is fd 0 (FCGX_InitRequest with fd 0), as spawn-fcgi
 * hands it over. With N, the process forks N - 1 copies of itself that
 * accept on the same socket, the way tokend's master pre-forks its workers:
 * they stay in the caller's session, where spawn-fcgi -F puts every child
 * in a session (and so a scheduler autogroup) of its own; bench/README.md
 * says why that matters. A copy gets SIGTERM when the first process dies.
 *
 * Invariants: the whole answer (headers + body) is built once at start-up
 * and written with one FCGX_PutStr per request; nothing is allocated per
 * request.
 *
 * Failure behaviour: a bad argument or failed start-up exits 2 with a
 * message on stderr; FCGX_Accept_r failing (socket closed, signal) ends the
 * loop and the process exits 0. It is a benchmark tool, not part of tokend.
 */
#include <fcgiapp.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

enum { MIN_BODY_BYTES = 64, MAX_BODY_BYTES = 1 << 20, MAX_PROCESSES = 1024 };

/* Builds headers + a JSON body of body_bytes bytes shaped like tokend's
 * token answer: {"access_token":"xxx…","token_type":"Bearer","expires_in":3600}.
 * Returns a malloc'd buffer and its length in *answer_len, or NULL. */
static char *build_answer(size_t body_bytes, size_t *answer_len)
{
    static const char head[] = "{\"access_token\":\"";
    static const char tail[] = "\",\"token_type\":\"Bearer\",\"expires_in\":3600}";
    size_t fixed = sizeof(head) - 1 + sizeof(tail) - 1;
    char headers[256];
    int headers_len = snprintf(headers, sizeof(headers),
                               "Status: 200 OK\r\nContent-Type: application/json\r\n"
                               "Content-Length: %zu\r\nCache-Control: no-store\r\n"
                               "Pragma: no-cache\r\n\r\n",
                               body_bytes);
    if (headers_len < 0 || (size_t)headers_len >= sizeof(headers) || body_bytes < fixed) {
        return NULL;
    }
    size_t total = (size_t)headers_len + body_bytes;
    char *answer = malloc(total);
    if (answer == NULL) {
        return NULL;
    }
    char *p = answer;
    memcpy(p, headers, (size_t)headers_len);
    p += headers_len;
    memcpy(p, head, sizeof(head) - 1);
    p += sizeof(head) - 1;
    size_t filler = body_bytes - fixed;
    memset(p, 'x', filler);
    p += filler;
    memcpy(p, tail, sizeof(tail) - 1);
    *answer_len = total;
    return answer;
}

/* Parses a decimal long in [min, max]; returns -1 if text is not one. */
static long parse_number(const char *text, long min, long max)
{
    char *end = NULL;
    errno = 0;
    long value = strtol(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0' || value < min || value > max) {
        return -1;
    }
    return value;
}

/* Forks processes - 1 copies that return from here and serve too.
 * Returns 0, or -1 if a fork failed (the copies already made get SIGTERM
 * when the caller exits). */
static int fork_copies(long processes)
{
    pid_t parent = getpid();
    for (long i = 1; i < processes; i++) {
        pid_t pid = fork();
        if (pid < 0) {
            return -1;
        }
        if (pid == 0) {
            /* Die with the first process, so stopping it stops all. */
            if (prctl(PR_SET_PDEATHSIG, SIGTERM) != 0 || getppid() != parent) {
                _exit(0);
            }
            return 0;
        }
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 2 && argc != 3) {
        fprintf(stderr, "usage: %s BODY_BYTES (%d to %d) [PROCESSES (1 to %d)]\n", argv[0],
                MIN_BODY_BYTES, MAX_BODY_BYTES, MAX_PROCESSES);
        return 2;
    }
    long body_bytes = parse_number(argv[1], MIN_BODY_BYTES, MAX_BODY_BYTES);
    long processes = argc == 3 ? parse_number(argv[2], 1, MAX_PROCESSES) : 1;
    if (body_bytes < 0 || processes < 0) {
        fprintf(stderr,
                "trivial_responder: bad arguments (BODY_BYTES %d to %d, PROCESSES 1 to %d)\n",
                MIN_BODY_BYTES, MAX_BODY_BYTES, MAX_PROCESSES);
        return 2;
    }
    size_t answer_len = 0;
    char *answer = build_answer((size_t)body_bytes, &answer_len);
    if (answer == NULL || FCGX_Init() != 0 || fork_copies(processes) != 0) {
        fprintf(stderr, "trivial_responder: start-up failed\n");
        free(answer);
        return 2;
    }

    FCGX_Request request;
    FCGX_InitRequest(&request, 0, 0);
    char sink[4096];
    while (FCGX_Accept_r(&request) >= 0) {
        /* Read the body to its end, as tokend does, so the web server's
         * stdin records are consumed in both cases. */
        while (FCGX_GetStr(sink, (int)sizeof(sink), request.in) > 0) {
        }
        FCGX_PutStr(answer, (int)answer_len, request.out);
        FCGX_Finish_r(&request);
    }
    FCGX_Free(&request, 1);
    free(answer);
    return 0;
}
