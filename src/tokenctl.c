/*
 * tokenctl.c - the administration CLI: schema migrations, clients, signing
 * keys, the admin token, the record of issued tokens. See tokenctl(1).
 *
 * Shape of a run: parse the whole command line (options may come before or
 * after the command words), find the command in `commands`, check that only
 * its options were given, validate every value, and only then load the
 * config and connect to PostgreSQL. So a typo never reaches the database and
 * `key generate` and `admin-token generate` need neither a config nor a
 * database.
 *
 * Output contract (scripts rely on it):
 * - stdout carries only the command's result: the new secret and a newline
 *   for `client add` / `client rotate-secret`, the table for `client list`,
 *   key: value lines for `client show`, one line per applied migration,
 *   "dropped N partitions, deleted M rows" for `tokens purge`, the number
 *   for `tokens count`; nothing at all for `key generate` and
 *   `admin-token generate`, whose secret goes only into the new file.
 * - every failure is one line on stderr starting "tokenctl: ". Exit status
 *   is 0 on success, 1 on any failure, 2 for a malformed command line.
 *
 * Secrets: a generated secret lives in one stack buffer, goes to stdout with
 * write(2) (never through stdio's buffer) only after the database accepted
 * its hash, and is wiped before returning. A database password comes from
 * the config's database_password_file or the URL and is never printed.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "config.h" /* PACKAGE_VERSION, from configure */
#include "tokend/admin_token.h"
#include "tokend/client_registry.h"
#include "tokend/config.h"
#include "tokend/logging.h"
#include "tokend/migrations.h"
#include "tokend/secret_hash.h"
#include "tokend/signing_key.h"
#include "tokend/status.h"
#include "tokend/revocation_registry.h"
#include "tokend/token_partitions.h"

#define EXIT_USAGE        2
#define PARSE_CONTINUE    (-1) /* parse_cli: no exit status yet */
#define MAX_OPERANDS      4
#define CONNECT_TIMEOUT_S 5 /* at least; db_timeout_ms wins when longer */
#define DEFAULT_CONFIG    TOKEND_SYSCONFDIR "/tokend.conf"

/* Options; each has a bit so commands can say which ones they take. */
enum option_index {
    OPT_CONFIG,
    OPT_DB,
    OPT_SQL_DIR,
    OPT_SCOPES,
    OPT_DEFAULT_SCOPES,
    OPT_AUDIENCE,
    OPT_TTL,
    OPT_ALG,
    OPT_OUT,
    OPT_BEFORE,
    OPT_CLIENT,
    OPT_COUNT,
    OPT_HELP = OPT_COUNT,
    OPT_VERSION,
};
#define BIT(option)    (1u << (option))
#define GLOBAL_OPTIONS (BIT(OPT_CONFIG) | BIT(OPT_DB))
/* getopt_long returns option_index + LONG_BASE for long options, keeping
 * clear of 1 (an operand, with "-" leading the optstring) and of the
 * characters of short options. */
#define LONG_BASE 256

/* Indexed by enum option_index. */
static const struct option long_options[] = {
    {"config", required_argument, NULL, LONG_BASE + OPT_CONFIG},
    {"db", required_argument, NULL, LONG_BASE + OPT_DB},
    {"sql-dir", required_argument, NULL, LONG_BASE + OPT_SQL_DIR},
    {"scopes", required_argument, NULL, LONG_BASE + OPT_SCOPES},
    {"default-scopes", required_argument, NULL, LONG_BASE + OPT_DEFAULT_SCOPES},
    {"audience", required_argument, NULL, LONG_BASE + OPT_AUDIENCE},
    {"ttl", required_argument, NULL, LONG_BASE + OPT_TTL},
    {"alg", required_argument, NULL, LONG_BASE + OPT_ALG},
    {"out", required_argument, NULL, LONG_BASE + OPT_OUT},
    {"before", required_argument, NULL, LONG_BASE + OPT_BEFORE},
    {"client", required_argument, NULL, LONG_BASE + OPT_CLIENT},
    {"help", no_argument, NULL, LONG_BASE + OPT_HELP},
    {"version", no_argument, NULL, LONG_BASE + OPT_VERSION},
    {NULL, 0, NULL, 0},
};

/* The parsed command line. */
struct cli {
    const char *values[OPT_COUNT]; /* NULL when not given */
    unsigned given;                /* BIT(option) for each one given */
    const char *operands[MAX_OPERANDS];
    size_t operand_count;
};

/* What one run works with; torn down by finish_context. */
struct context {
    const struct cli *cli;
    const char *client_id; /* the ID operand, for commands that take one */
    char jti[33];          /* the JTI operand, normalised */
    struct tokend_config config;
    PGconn *conn;
    char error[CLIENT_REGISTRY_ERROR_SIZE];
};
_Static_assert(CLIENT_REGISTRY_ERROR_SIZE >= TOKEN_PARTITIONS_ERROR_SIZE,
               "context.error must hold every module's messages");

struct command {
    const char *group;   /* first word */
    const char *name;    /* second word, or NULL for one-word commands */
    const char *operand; /* what the one operand after the words is: "client ID",
                            "JTI", or NULL for none */
    unsigned options;    /* options it accepts beyond the global ones */
    unsigned required;   /* options it cannot run without */
    int (*run)(struct context *ctx);
};

/* ---- messages ---- */

/* Prints "tokenctl: MESSAGE" plus `suffix` on stderr; returns `status`. */
static int report(int status, const char *suffix, const char *fmt, va_list args)
    __attribute__((format(printf, 3, 0)));

static int report(int status, const char *suffix, const char *fmt, va_list args)
{
    char line[1024];
    vsnprintf(line, sizeof(line), fmt, args);
    fprintf(stderr, "tokenctl: %s%s\n", line, suffix);
    return status;
}

static int fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Prints "tokenctl: ..." on stderr; returns EXIT_FAILURE for `return`. */
static int fail(const char *fmt, ...)
{
    va_list args;
    va_start(args, fmt);
    int status = report(EXIT_FAILURE, "", fmt, args);
    va_end(args);
    return status;
}

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* The same for a usage mistake: points at --help, returns EXIT_USAGE. */
static int usage_error(const char *fmt, ...)
{
    va_list args;
    va_start(args, fmt);
    int status = report(EXIT_USAGE, " (see tokenctl --help)", fmt, args);
    va_end(args);
    return status;
}

static void print_help(void)
{
    fputs("usage: tokenctl [-c FILE] [--db URL] COMMAND ...\n"
          "\n"
          "  migrate [--sql-dir DIR]           apply pending schema migrations\n"
          "  client add ID --scopes \"A B\" [--default-scopes \"A\"]\n"
          "             [--audience \"URI ...\"] [--ttl SECONDS]\n"
          "                                    add a client; prints its secret\n"
          "  client list                       list clients\n"
          "  client show ID                    show one client (never its secret)\n"
          "  client rotate-secret ID           give a client a new secret; prints it\n"
          "  client set-scopes ID --scopes \"A B\" [--default-scopes \"A\"]\n"
          "  client disable ID | enable ID | delete ID\n"
          "  client revoke-all ID              revoke every token the client was issued so far\n"
          "  key generate --alg ES256|RS256|HS256 --out FILE\n"
          "                                    write a new signing key (mode 0600)\n"
          "  admin-token generate --out FILE   write a new admin endpoint token (mode 0600)\n"
          "  tokens count [--client ID]        count the recorded tokens\n"
          "  tokens purge --before YYYY-MM-DD  drop the token records of the days before\n"
          "                                    that UTC date\n"
          "  tokens revoke JTI                 revoke one recorded token\n"
          "\n"
          "  -c, --config FILE   config file (default " DEFAULT_CONFIG ", if it exists)\n"
          "  --db URL            PostgreSQL URL (else $DATABASE_URL, else database_url)\n"
          "  --sql-dir DIR       migrations (else $TOKEND_SQL_DIR, else " TOKEND_SQLDIR ")\n"
          "  -h, --help          show this help\n"
          "  -V, --version       show the version\n"
          "\n"
          "Exit status: 0 done, 1 failed, 2 bad command line. See tokenctl(1).\n",
          stdout);
}

/* ---- command line ---- */

/* The option as the user spelled it, without any "=value". */
static void option_spelling(const char *arg, char *out, size_t out_size)
{
    size_t len = arg != NULL ? strcspn(arg, "=") : 0;
    snprintf(out, out_size, "%.*s", (int)(len < 64 ? len : 64), arg != NULL ? arg : "?");
}

/* Keeps the first MAX_OPERANDS operands and counts them all: no command
 * takes more than MAX_OPERANDS - 1, so find_command can name the first
 * surplus one. */
static void add_operand(struct cli *cli, const char *operand)
{
    if (cli->operand_count < MAX_OPERANDS) {
        cli->operands[cli->operand_count] = operand;
    }
    cli->operand_count++;
}

/* Fills *cli from argv. Options and operands may come in any order (the
 * optstring's leading '-' hands operands back in place, whatever
 * POSIXLY_CORRECT says); "--" ends the options, so an ID may start with
 * '-'. Returns PARSE_CONTINUE, or the exit status to stop with (--help and
 * --version print and stop with 0). */
static int parse_cli(int argc, char **argv, struct cli *cli)
{
    memset(cli, 0, sizeof(*cli));
    opterr = 0;
    for (;;) {
        int option = getopt_long(argc, argv, "-:c:hV", long_options, NULL);
        char spelled[80];
        switch (option) {
        case -1:
            for (int i = optind; i < argc; i++) {
                add_operand(cli, argv[i]);
            }
            return PARSE_CONTINUE;
        case 1:
            add_operand(cli, optarg);
            continue;
        case 'c':
            option = LONG_BASE + OPT_CONFIG;
            break;
        case 'h':
        case LONG_BASE + OPT_HELP:
            print_help();
            return EXIT_SUCCESS;
        case 'V':
        case LONG_BASE + OPT_VERSION:
            printf("tokenctl (tokend) %s\n", PACKAGE_VERSION);
            return EXIT_SUCCESS;
        case ':':
            option_spelling(argv[optind - 1], spelled, sizeof(spelled));
            return usage_error("option '%s' needs a value", spelled);
        case '?':
            if (optopt != 0) {
                snprintf(spelled, sizeof(spelled), "-%c", optopt);
            } else {
                option_spelling(argv[optind - 1], spelled, sizeof(spelled));
            }
            return usage_error("unknown option '%s'", spelled);
        default:
            break;
        }
        int index = option - LONG_BASE;
        if (index < 0 || index >= OPT_COUNT) {
            return usage_error("unexpected option");
        }
        if (cli->given & BIT(index)) {
            return usage_error("option --%s given twice", long_options[index].name);
        }
        cli->given |= BIT(index);
        cli->values[index] = optarg;
    }
}

/* ---- database and config ---- */

/* Loads the config (-c FILE, else the default file when it exists). */
static int load_config(struct context *ctx)
{
    char error[CONFIG_ERROR_SIZE];
    const char *path = ctx->cli->values[OPT_CONFIG];
    if (path == NULL) {
        if (access(DEFAULT_CONFIG, F_OK) != 0) {
            return EXIT_SUCCESS;
        }
        path = DEFAULT_CONFIG;
    }
    if (config_load_file(&ctx->config, path, error) != TK_OK) {
        return fail("%s", error);
    }
    return EXIT_SUCCESS;
}

/* Loads the config, finds the database and connects: ctx->conn. */
static int open_database(struct context *ctx)
{
    int status = load_config(ctx);
    if (status != EXIT_SUCCESS) {
        return status;
    }
    const char *url = ctx->cli->values[OPT_DB];
    if (url == NULL || url[0] == '\0') {
        url = getenv("DATABASE_URL");
    }
    if (url == NULL || url[0] == '\0') {
        url = ctx->config.database_url;
    }
    if (url == NULL || url[0] == '\0') {
        return fail("no database: use --db, DATABASE_URL or database_url in the config");
    }
    int timeout_s = (ctx->config.db_timeout_ms + 999) / 1000;
    if (timeout_s < CONNECT_TIMEOUT_S) {
        timeout_s = CONNECT_TIMEOUT_S;
    }
    if (client_registry_connect(url, ctx->config.database_password, timeout_s, &ctx->conn,
                                ctx->error, sizeof(ctx->error)) != TK_OK ||
        client_registry_set_notify_channel(ctx->conn, ctx->config.notify_channel, ctx->error,
                                           sizeof(ctx->error)) != TK_OK) {
        return fail("%s", ctx->error);
    }
    return EXIT_SUCCESS;
}

/* ---- output ---- */

static int write_all(int fd, const char *data, size_t len)
{
    while (len > 0) {
        ssize_t written = write(fd, data, len);
        if (written < 0 && errno == EINTR) {
            continue;
        }
        if (written <= 0) {
            return TK_ERROR;
        }
        data += written;
        len -= (size_t)written;
    }
    return TK_OK;
}

/* Writes "secret\n" to stdout; the caller wipes `secret`. */
static int print_secret(const char *secret, const char *client_id)
{
    char line[SECRET_GENERATED_SIZE + 1];
    size_t len = strlen(secret);
    memcpy(line, secret, len);
    line[len] = '\n';
    int rc = write_all(STDOUT_FILENO, line, len + 1);
    int saved_errno = errno;
    OPENSSL_cleanse(line, sizeof(line));
    if (rc != TK_OK) {
        return fail("cannot write the new secret to standard output (%s); it is lost: run "
                    "'tokenctl client rotate-secret %s'",
                    strerror(saved_errno), client_id);
    }
    return EXIT_SUCCESS;
}

static int finish_stdout(void)
{
    if (fflush(stdout) != 0 || ferror(stdout)) {
        return fail("cannot write to standard output: %s", strerror(errno));
    }
    return EXIT_SUCCESS;
}

/* ---- validation of values (before any database access) ---- */

static int check_client_id(const char *client_id)
{
    if (!client_id_valid(client_id)) {
        return fail("invalid client id: use 1 to %d printable ASCII characters without spaces",
                    CLIENT_ID_MAX_LEN);
    }
    return EXIT_SUCCESS;
}

/* Parses --ttl: a whole number of seconds, 1..86400. */
static int parse_ttl(const char *text, int64_t *ttl_s)
{
    size_t digits = strspn(text, "0123456789");
    if (digits == 0 || digits > 6 || text[digits] != '\0' || atol(text) < 1 ||
        atol(text) > CLIENT_REGISTRY_TTL_MAX_S) {
        return fail("ttl must be a whole number of seconds from 1 to %d",
                    CLIENT_REGISTRY_TTL_MAX_S);
    }
    *ttl_s = atol(text);
    return EXIT_SUCCESS;
}

/* Checks --before: a real calendar date, YYYY-MM-DD. */
static int check_date(const char *date)
{
    if (!token_partitions_date_valid(date)) {
        return fail("--before must be a calendar date written YYYY-MM-DD");
    }
    return EXIT_SUCCESS;
}

/* ---- commands ---- */

static void print_applied(const struct migration *migration, void *context)
{
    (void)context;
    size_t len = strlen(migration->file_name) - strlen(".sql");
    printf("applied %.*s\n", (int)len, migration->file_name);
    fflush(stdout);
}

static int run_migrate(struct context *ctx)
{
    const char *sql_dir = ctx->cli->values[OPT_SQL_DIR];
    if (sql_dir == NULL || sql_dir[0] == '\0') {
        sql_dir = getenv("TOKEND_SQL_DIR");
    }
    if (sql_dir == NULL || sql_dir[0] == '\0') {
        sql_dir = TOKEND_SQLDIR;
    }
    struct migration_list list;
    if (migrations_scan(sql_dir, &list, ctx->error, sizeof(ctx->error)) != TK_OK) {
        return fail("%s", ctx->error);
    }
    migrations_list_free(&list);
    int status = open_database(ctx);
    if (status != EXIT_SUCCESS) {
        return status;
    }
    int applied =
        migrations_apply(ctx->conn, sql_dir, print_applied, NULL, ctx->error, sizeof(ctx->error));
    if (applied < 0) {
        return fail("%s", ctx->error);
    }
    if (applied == 0) {
        printf("schema is up to date\n");
    }
    return finish_stdout();
}

/* Generates a secret, stores its hash with `store` and prints the secret. */
static int issue_secret(struct context *ctx, const struct client_registry_settings *new_client)
{
    char secret[SECRET_GENERATED_SIZE];
    char hash[SECRET_HASH_MAX_LEN];
    int status = EXIT_FAILURE;
    int rc;
    if (secret_generate(secret) != TK_OK) {
        status = fail("cannot generate a random secret");
        goto done;
    }
    rc = secret_hash_create(secret, ctx->config.secret_hash_iterations, hash);
    if (rc != TK_OK) {
        status = fail(rc == TK_INVALID ? "secret_hash_iterations is out of range"
                                       : "cannot hash the secret");
        goto done;
    }
    if (new_client != NULL) {
        rc = client_registry_add(ctx->conn, new_client, hash, ctx->error, sizeof(ctx->error));
    } else {
        rc = client_registry_update_secret(ctx->conn, ctx->client_id, hash, ctx->error,
                                           sizeof(ctx->error));
    }
    if (rc != TK_OK) {
        status = fail("%s", ctx->error);
        goto done;
    }
    status = print_secret(secret, ctx->client_id);
done:
    OPENSSL_cleanse(secret, sizeof(secret));
    OPENSSL_cleanse(hash, sizeof(hash));
    return status;
}

static int run_client_add(struct context *ctx)
{
    const struct cli *cli = ctx->cli;
    struct client_registry_settings settings = {
        .client_id = ctx->client_id,
        .allowed_scopes = cli->values[OPT_SCOPES],
        .default_scopes =
            cli->values[OPT_DEFAULT_SCOPES] != NULL ? cli->values[OPT_DEFAULT_SCOPES] : "",
        .audiences = cli->values[OPT_AUDIENCE] != NULL ? cli->values[OPT_AUDIENCE] : "",
        .token_ttl_s = 0,
    };
    if (cli->values[OPT_TTL] != NULL &&
        parse_ttl(cli->values[OPT_TTL], &settings.token_ttl_s) != EXIT_SUCCESS) {
        return EXIT_FAILURE;
    }
    if (client_registry_check_settings(&settings, ctx->error, sizeof(ctx->error)) != TK_OK) {
        return fail("%s", ctx->error);
    }
    int status = open_database(ctx);
    return status != EXIT_SUCCESS ? status : issue_secret(ctx, &settings);
}

static int run_client_rotate_secret(struct context *ctx)
{
    int status = open_database(ctx);
    return status != EXIT_SUCCESS ? status : issue_secret(ctx, NULL);
}

enum { LIST_COLUMNS = 6 };

/* The cells of one table row: row 0 is the header, row r is entry r - 1.
 * An empty list shows as "-", a default TTL as "default". */
static void list_row(const struct client_registry_entry *entries, char (*ttls)[24], size_t row,
                     const char *cells[LIST_COLUMNS])
{
    static const char *const headers[LIST_COLUMNS] = {
        "ID", "ENABLED", "SCOPES", "DEFAULT_SCOPES", "AUDIENCES", "TTL"};
    if (row == 0) {
        memcpy(cells, headers, sizeof(headers));
        return;
    }
    const struct client_registry_entry *entry = &entries[row - 1];
    cells[0] = entry->client_id;
    cells[1] = entry->enabled ? "yes" : "no";
    cells[2] = entry->allowed_scopes[0] != '\0' ? entry->allowed_scopes : "-";
    cells[3] = entry->default_scopes[0] != '\0' ? entry->default_scopes : "-";
    cells[4] = entry->audiences[0] != '\0' ? entry->audiences : "-";
    cells[5] = ttls[row - 1];
}

static int run_client_list(struct context *ctx)
{
    struct client_registry_entry *entries = NULL;
    size_t count = 0;
    int status = open_database(ctx);
    if (status != EXIT_SUCCESS) {
        return status;
    }
    if (client_registry_list(ctx->conn, &entries, &count, ctx->error, sizeof(ctx->error)) !=
        TK_OK) {
        return fail("%s", ctx->error);
    }
    char(*ttls)[24] = calloc(count > 0 ? count : 1, sizeof(*ttls));
    if (ttls == NULL) {
        client_registry_entries_free(entries, count);
        return fail("out of memory");
    }
    for (size_t i = 0; i < count; i++) {
        if (entries[i].token_ttl_s > 0) {
            snprintf(ttls[i], sizeof(ttls[i]), "%lld", (long long)entries[i].token_ttl_s);
        } else {
            snprintf(ttls[i], sizeof(ttls[i]), "default");
        }
    }
    /* Columns are separated by at least two spaces; lists inside a cell
     * use single spaces, so a script can still split the table. */
    const char *cells[LIST_COLUMNS];
    size_t widths[LIST_COLUMNS] = {0};
    for (size_t row = 0; row <= count; row++) {
        list_row(entries, ttls, row, cells);
        for (size_t column = 0; column < LIST_COLUMNS; column++) {
            size_t len = strlen(cells[column]);
            widths[column] = len > widths[column] ? len : widths[column];
        }
    }
    for (size_t row = 0; row <= count; row++) {
        list_row(entries, ttls, row, cells);
        for (size_t column = 0; column + 1 < LIST_COLUMNS; column++) {
            printf("%-*s  ", (int)widths[column], cells[column]);
        }
        printf("%s\n", cells[LIST_COLUMNS - 1]);
    }
    free(ttls);
    client_registry_entries_free(entries, count);
    return finish_stdout();
}

static int run_client_show(struct context *ctx)
{
    struct client_registry_entry entry;
    int status = open_database(ctx);
    if (status != EXIT_SUCCESS) {
        return status;
    }
    if (client_registry_get(ctx->conn, ctx->client_id, &entry, ctx->error, sizeof(ctx->error)) !=
        TK_OK) {
        return fail("%s", ctx->error);
    }
    printf("client_id: %s\n", entry.client_id);
    printf("enabled: %s\n", entry.enabled ? "yes" : "no");
    printf("scopes: %s\n", entry.allowed_scopes);
    printf("default_scopes: %s\n", entry.default_scopes);
    printf("audiences: %s\n", entry.audiences);
    if (entry.token_ttl_s > 0) {
        printf("ttl: %lld\n", (long long)entry.token_ttl_s);
    } else {
        printf("ttl: default\n");
    }
    printf("grant_types: %s\n", entry.grant_types);
    printf("created_at: %s\n", entry.created_at);
    printf("updated_at: %s\n", entry.updated_at);
    client_registry_entry_free(&entry);
    return finish_stdout();
}

static int run_client_set_scopes(struct context *ctx)
{
    const char *allowed = ctx->cli->values[OPT_SCOPES];
    const char *defaults = ctx->cli->values[OPT_DEFAULT_SCOPES];
    if (client_registry_check_scopes(allowed, defaults, ctx->error, sizeof(ctx->error)) != TK_OK) {
        return fail("%s", ctx->error);
    }
    int status = open_database(ctx);
    if (status != EXIT_SUCCESS) {
        return status;
    }
    if (client_registry_set_scopes(ctx->conn, ctx->client_id, allowed, defaults, ctx->error,
                                   sizeof(ctx->error)) != TK_OK) {
        return fail("%s", ctx->error);
    }
    return EXIT_SUCCESS;
}

static int set_enabled(struct context *ctx, bool enabled)
{
    int status = open_database(ctx);
    if (status != EXIT_SUCCESS) {
        return status;
    }
    if (client_registry_set_enabled(ctx->conn, ctx->client_id, enabled, ctx->error,
                                    sizeof(ctx->error)) != TK_OK) {
        return fail("%s", ctx->error);
    }
    return EXIT_SUCCESS;
}

static int run_client_disable(struct context *ctx)
{
    return set_enabled(ctx, false);
}

static int run_client_enable(struct context *ctx)
{
    return set_enabled(ctx, true);
}

static int run_client_delete(struct context *ctx)
{
    int status = open_database(ctx);
    if (status != EXIT_SUCCESS) {
        return status;
    }
    if (client_registry_delete(ctx->conn, ctx->client_id, ctx->error, sizeof(ctx->error)) !=
        TK_OK) {
        return fail("%s", ctx->error);
    }
    return EXIT_SUCCESS;
}

static int run_client_revoke_all(struct context *ctx)
{
    int status = open_database(ctx);
    if (status != EXIT_SUCCESS) {
        return status;
    }
    if (client_registry_revoke_all(ctx->conn, ctx->client_id, ctx->error, sizeof(ctx->error)) !=
        TK_OK) {
        return fail("%s", ctx->error);
    }
    return EXIT_SUCCESS;
}

static int run_key_generate(struct context *ctx)
{
    const char *alg_name = ctx->cli->values[OPT_ALG];
    const char *path = ctx->cli->values[OPT_OUT];
    enum jws_alg alg;
    struct stat st;
    if (jws_alg_parse(alg_name, &alg) != TK_OK) {
        return fail("unknown algorithm '%.32s': use ES256, RS256 or HS256", alg_name);
    }
    if (path[0] == '\0') {
        return fail("--out needs a file name");
    }
    /* signing_key_generate refuses too (O_EXCL); this only words it better. */
    if (lstat(path, &st) == 0) {
        return fail("%s already exists; refusing to overwrite it", path);
    }
    if (signing_key_generate(alg, path, ctx->error, sizeof(ctx->error)) != TK_OK) {
        return fail("%s", ctx->error);
    }
    return EXIT_SUCCESS;
}

static int run_admin_token_generate(struct context *ctx)
{
    const char *path = ctx->cli->values[OPT_OUT];
    struct stat st;
    if (path[0] == '\0') {
        return fail("--out needs a file name");
    }
    /* admin_token_generate_file refuses too (O_EXCL); this only words it better. */
    if (lstat(path, &st) == 0) {
        return fail("%s already exists; refusing to overwrite it", path);
    }
    if (admin_token_generate_file(path, ctx->error, sizeof(ctx->error)) != TK_OK) {
        return fail("%s", ctx->error);
    }
    return EXIT_SUCCESS;
}

static int run_tokens_count(struct context *ctx)
{
    const char *client_id = ctx->cli->values[OPT_CLIENT];
    int64_t count;
    if (client_id != NULL && check_client_id(client_id) != EXIT_SUCCESS) {
        return EXIT_FAILURE;
    }
    int status = open_database(ctx);
    if (status != EXIT_SUCCESS) {
        return status;
    }
    if (token_partitions_count_tokens(ctx->conn, client_id, &count, ctx->error,
                                      sizeof(ctx->error)) != TK_OK) {
        return fail("%s", ctx->error);
    }
    printf("%lld\n", (long long)count);
    return finish_stdout();
}

static int run_tokens_purge(struct context *ctx)
{
    const char *date = ctx->cli->values[OPT_BEFORE];
    struct token_partitions_result result;
    if (check_date(date) != EXIT_SUCCESS) {
        return EXIT_FAILURE;
    }
    int status = open_database(ctx);
    if (status != EXIT_SUCCESS) {
        return status;
    }
    if (token_partitions_purge_before(ctx->conn, date, &result, ctx->error, sizeof(ctx->error)) !=
        TK_OK) {
        return fail("%s", ctx->error);
    }
    printf("dropped %d partitions, deleted %lld rows\n", result.dropped_partitions,
           (long long)result.deleted_rows);
    return finish_stdout();
}

static int run_tokens_revoke(struct context *ctx)
{
    int status = open_database(ctx);
    if (status != EXIT_SUCCESS) {
        return status;
    }
    char client_id[CLIENT_ID_MAX_LEN + 1];
    if (revocation_registry_revoke_token(ctx->conn, ctx->jti, ctx->config.notify_channel, client_id,
                                         sizeof(client_id), ctx->error,
                                         sizeof(ctx->error)) != TK_OK) {
        return fail("%s", ctx->error);
    }
    return EXIT_SUCCESS;
}

/* ---- dispatch ---- */

static const struct command commands[] = {
    {"migrate", NULL, NULL, BIT(OPT_SQL_DIR), 0, run_migrate},
    {"client", "add", "client ID",
     BIT(OPT_SCOPES) | BIT(OPT_DEFAULT_SCOPES) | BIT(OPT_AUDIENCE) | BIT(OPT_TTL), BIT(OPT_SCOPES),
     run_client_add},
    {"client", "list", NULL, 0, 0, run_client_list},
    {"client", "show", "client ID", 0, 0, run_client_show},
    {"client", "rotate-secret", "client ID", 0, 0, run_client_rotate_secret},
    {"client", "set-scopes", "client ID", BIT(OPT_SCOPES) | BIT(OPT_DEFAULT_SCOPES),
     BIT(OPT_SCOPES), run_client_set_scopes},
    {"client", "disable", "client ID", 0, 0, run_client_disable},
    {"client", "enable", "client ID", 0, 0, run_client_enable},
    {"client", "delete", "client ID", 0, 0, run_client_delete},
    {"client", "revoke-all", "client ID", 0, 0, run_client_revoke_all},
    {"key", "generate", NULL, BIT(OPT_ALG) | BIT(OPT_OUT), BIT(OPT_ALG) | BIT(OPT_OUT),
     run_key_generate},
    {"admin-token", "generate", NULL, BIT(OPT_OUT), BIT(OPT_OUT), run_admin_token_generate},
    {"tokens", "count", NULL, BIT(OPT_CLIENT), 0, run_tokens_count},
    {"tokens", "purge", NULL, BIT(OPT_BEFORE), BIT(OPT_BEFORE), run_tokens_purge},
    {"tokens", "revoke", "JTI", 0, 0, run_tokens_revoke},
};

/* Finds the command named by the operands and checks its options and
 * operands. Returns it, or NULL after printing a usage error. */
static const struct command *find_command(const struct cli *cli)
{
    const char *group = cli->operands[0], *name = cli->operands[1];
    const struct command *command = NULL;
    bool group_known = false;
    if (cli->operand_count == 0) {
        usage_error("no command given");
        return NULL;
    }
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
        if (strcmp(commands[i].group, group) != 0) {
            continue;
        }
        group_known = true;
        if (commands[i].name == NULL ||
            (cli->operand_count > 1 && strcmp(commands[i].name, name) == 0)) {
            command = &commands[i];
            break;
        }
    }
    if (command == NULL) {
        if (!group_known) {
            usage_error("unknown command '%.64s'", group);
        } else if (cli->operand_count < 2) {
            usage_error("'%s' needs a subcommand", group);
        } else {
            usage_error("unknown command '%s %.64s'", group, name);
        }
        return NULL;
    }
    char shown[48];
    snprintf(shown, sizeof(shown), "%s%s%s", command->group, command->name != NULL ? " " : "",
             command->name != NULL ? command->name : "");
    size_t words = command->name != NULL ? 2 : 1;
    size_t expected = words + (command->operand != NULL ? 1 : 0);
    if (cli->operand_count < expected) {
        usage_error("%s: missing %s", shown, command->operand);
        return NULL;
    }
    if (cli->operand_count > expected) {
        usage_error("unexpected argument '%.64s'", cli->operands[expected]);
        return NULL;
    }
    for (int option = 0; option < OPT_COUNT; option++) {
        unsigned bit = BIT(option);
        if ((cli->given & bit) && !((command->options | GLOBAL_OPTIONS) & bit)) {
            usage_error("%s does not take --%s", shown, long_options[option].name);
            return NULL;
        }
        if ((command->required & bit) && !(cli->given & bit)) {
            usage_error("%s needs --%s", shown, long_options[option].name);
            return NULL;
        }
    }
    return command;
}

int main(int argc, char **argv)
{
    struct cli cli;
    struct context ctx = {.cli = &cli};
    int status;

    log_set_program("tokenctl");
    signal(SIGPIPE, SIG_IGN); /* a closed stdout becomes EPIPE, reported */
    status = parse_cli(argc, argv, &cli);
    if (status != PARSE_CONTINUE) {
        return status;
    }
    const struct command *command = find_command(&cli);
    if (command == NULL) {
        return EXIT_USAGE;
    }
    if (command->operand != NULL && strcmp(command->operand, "JTI") == 0) {
        if (!revocation_jti_normalize(cli.operands[2], ctx.jti)) {
            return fail("invalid jti: a token id is 32 hexadecimal digits (or a UUID)");
        }
    } else if (command->operand != NULL) {
        ctx.client_id = cli.operands[command->name != NULL ? 2 : 1];
        if (check_client_id(ctx.client_id) != EXIT_SUCCESS) {
            return EXIT_FAILURE;
        }
    }
    if (config_init_defaults(&ctx.config) != TK_OK) {
        config_free(&ctx.config);
        return fail("out of memory");
    }
    status = command->run(&ctx);
    PQfinish(ctx.conn);
    config_free(&ctx.config);
    return status;
}
