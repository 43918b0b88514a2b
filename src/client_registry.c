/*
 * client_registry.c - create, read, update and delete rows of the clients
 * table for tokenctl, over one synchronous libpq connection.
 *
 * Rules this file keeps:
 * - Values only ever travel as parameters of PQexecParams; no value is
 *   pasted into SQL text.
 * - Inputs are validated here (and by the caller before it connects), so a
 *   malformed value never reaches the database; the table's constraints are
 *   a second line, and their violations come back as TK_INVALID with a
 *   message in tokenctl's words rather than PostgreSQL's.
 * - Lists are normalised before storing: single spaces, each item once, in
 *   the order first given; string_to_array(list, ' ') turns them into text
 *   arrays ('' becomes the empty array).
 * - Each change is one statement: a data-modifying CTE whose RETURNING rows
 *   feed pg_notify(<notify_channel>, client_id). The notification goes out
 *   exactly when the change commits, and the row count doubles as the
 *   found/not-found answer.
 * - Entries handed out never contain the secret hash.
 *
 * Ownership: the caller owns the connection; entries own their strings.
 * Failure: one line in `error`, never a secret, a hash or a password.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokend/pg_error.h"
#include "tokend/client_registry.h"
#include "tokend/scope.h"
#include "tokend/status.h"

/* The channel of change notices: the session's tokend.notify_channel
 * (client_registry_set_notify_channel), else tokend_clients. */
#define NOTIFY_CHANNEL                                                                             \
    "coalesce(nullif(current_setting('tokend.notify_channel', true), ''), 'tokend_clients')"

#define AUDIENCE_MAX_LEN 512
#define ECHO_MAX         64 /* bytes of an offending item shown in a message */

static const char select_columns[] =
    "SELECT client_id, array_to_string(allowed_scopes, ' '),"
    " array_to_string(default_scopes, ' '), array_to_string(audiences, ' '),"
    " array_to_string(grant_types, ' '), coalesce(token_ttl_s, 0), enabled,"
    " to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),"
    " to_char(updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"
    " FROM clients";

/* ---- messages ---- */

/* Copies at most ECHO_MAX bytes of `text` (length `len`) for a message,
 * replacing anything but printable ASCII with '?'. */
static void echo_item(char *out, size_t out_size, const char *text, size_t len)
{
    size_t n = 0;
    for (size_t i = 0; i < len && n + 1 < out_size && n < ECHO_MAX; i++) {
        unsigned char c = (unsigned char)text[i];
        out[n++] = (c >= 0x20 && c < 0x7F) ? (char)c : '?';
    }
    if (out_size > 0) {
        out[n] = '\0';
    }
}

/* ---- validation ---- */

/* Advances *cursor past the next space-separated item. False at the end. */
static bool next_item(const char **cursor, const char **item, size_t *item_len)
{
    const char *p = *cursor;
    while (*p == ' ') {
        p++;
    }
    if (*p == '\0') {
        *cursor = p;
        return false;
    }
    *item = p;
    while (*p != ' ' && *p != '\0') {
        p++;
    }
    *item_len = (size_t)(p - *item);
    *cursor = p;
    return true;
}

/* True when `list` (normalised: single spaces) has the item text[0..len). */
static bool list_has(const char *list, const char *text, size_t len)
{
    const char *cursor = list, *item;
    size_t item_len;
    while (next_item(&cursor, &item, &item_len)) {
        if (item_len == len && memcmp(item, text, len) == 0) {
            return true;
        }
    }
    return false;
}

/* Returns a heap copy of `text` with items separated by single spaces and
 * each item once, or NULL when out of memory. */
static char *normalize_list(const char *text)
{
    char *out = malloc(strlen(text) + 1);
    if (out == NULL) {
        return NULL;
    }
    size_t len = 0;
    const char *cursor = text, *item;
    size_t item_len;
    out[0] = '\0';
    while (next_item(&cursor, &item, &item_len)) {
        if (list_has(out, item, item_len)) {
            continue;
        }
        if (len > 0) {
            out[len++] = ' ';
        }
        memcpy(out + len, item, item_len);
        len += item_len;
        out[len] = '\0';
    }
    return out;
}

/* Checks each item of one scope list. `label` names the list in messages. */
static int check_scope_list(const char *list, const char *label, char *error, size_t error_size)
{
    const char *cursor = list, *item;
    size_t item_len;
    if (strspn(list, " ") == strlen(list)) {
        return TK_OK; /* empty list */
    }
    if (scope_list_valid(list)) {
        return TK_OK;
    }
    /* Find the offending item to name it; a bad separator (a tab, say)
     * makes the item around it the offender. */
    while (next_item(&cursor, &item, &item_len)) {
        char *token = strndup(item, item_len);
        bool valid = token != NULL && scope_list_valid(token);
        free(token);
        if (!valid) {
            char shown[ECHO_MAX + 1];
            echo_item(shown, sizeof(shown), item, item_len);
            snprintf(error, error_size,
                     "%s: '%s' is not a valid scope (printable ASCII except space, '\"' and "
                     "'\\')",
                     label, shown);
            return TK_INVALID;
        }
    }
    snprintf(error, error_size, "%s: not a valid scope list", label);
    return TK_INVALID;
}

int client_registry_check_scopes(const char *allowed_scopes, const char *default_scopes,
                                 char *error, size_t error_size)
{
    int rc = check_scope_list(allowed_scopes, "scopes", error, error_size);
    if (rc != TK_OK || default_scopes == NULL) {
        return rc;
    }
    rc = check_scope_list(default_scopes, "default scopes", error, error_size);
    if (rc != TK_OK) {
        return rc;
    }
    const char *cursor = default_scopes, *item;
    size_t item_len;
    while (next_item(&cursor, &item, &item_len)) {
        if (!list_has(allowed_scopes, item, item_len)) {
            char shown[ECHO_MAX + 1];
            echo_item(shown, sizeof(shown), item, item_len);
            snprintf(error, error_size, "default scope '%s' is not one of the scopes", shown);
            return TK_INVALID;
        }
    }
    return TK_OK;
}

/* An absolute URI starts with a scheme: ALPHA *( ALPHA / DIGIT / + - . ) ":"
 * and has something after the colon. */
static bool audience_uri_valid(const char *item, size_t len)
{
    const char *colon = memchr(item, ':', len);
    if (colon == NULL) {
        return true; /* a plain name */
    }
    if (colon == item || !isalpha((unsigned char)item[0]) || colon + 1 == item + len) {
        return false;
    }
    for (const char *p = item; p < colon; p++) {
        if (!isalnum((unsigned char)*p) && *p != '+' && *p != '-' && *p != '.') {
            return false;
        }
    }
    return true;
}

int client_registry_check_audiences(const char *audiences, char *error, size_t error_size)
{
    for (const unsigned char *p = (const unsigned char *)audiences; *p != '\0'; p++) {
        if (*p != ' ' && (*p < 0x21 || *p > 0x7E || *p == '"' || *p == '\\')) {
            snprintf(error, error_size,
                     "audiences: only printable ASCII without '\"' and '\\' is allowed, "
                     "separated by spaces");
            return TK_INVALID;
        }
    }
    const char *cursor = audiences, *item;
    size_t item_len;
    while (next_item(&cursor, &item, &item_len)) {
        char shown[ECHO_MAX + 1];
        echo_item(shown, sizeof(shown), item, item_len);
        if (item_len > AUDIENCE_MAX_LEN) {
            snprintf(error, error_size, "audience '%s...' is longer than %d bytes", shown,
                     AUDIENCE_MAX_LEN);
            return TK_INVALID;
        }
        if (!audience_uri_valid(item, item_len)) {
            snprintf(error, error_size, "audience '%s' is neither a plain name nor an absolute URI",
                     shown);
            return TK_INVALID;
        }
    }
    return TK_OK;
}

int client_registry_check_settings(const struct client_registry_settings *settings, char *error,
                                   size_t error_size)
{
    if (!client_id_valid(settings->client_id)) {
        snprintf(error, error_size,
                 "invalid client id: use 1 to %d printable ASCII characters without spaces",
                 CLIENT_ID_MAX_LEN);
        return TK_INVALID;
    }
    int rc = client_registry_check_scopes(settings->allowed_scopes, settings->default_scopes, error,
                                          error_size);
    if (rc != TK_OK) {
        return rc;
    }
    rc = client_registry_check_audiences(settings->audiences, error, error_size);
    if (rc != TK_OK) {
        return rc;
    }
    if (settings->token_ttl_s < 0 || settings->token_ttl_s > CLIENT_REGISTRY_TTL_MAX_S) {
        snprintf(error, error_size, "ttl must be between 1 and %d seconds",
                 CLIENT_REGISTRY_TTL_MAX_S);
        return TK_INVALID;
    }
    return TK_OK;
}

/* ---- database ---- */

int client_registry_connect(const char *url, const char *password, int connect_timeout_s,
                            PGconn **out, char *error, size_t error_size)
{
    char *parse_error = NULL;
    char timeout[16];
    *out = NULL;

    PQconninfoOption *parsed = PQconninfoParse(url, &parse_error);
    if (parsed == NULL) {
        char message[256];
        pg_error_first_line(message, sizeof(message),
                            parse_error != NULL ? parse_error : "out of memory");
        snprintf(error, error_size, "bad database URL: %s", message);
        PQfreemem(parse_error);
        return TK_INVALID;
    }
    PQconninfoFree(parsed);

    /* Later keywords win: the URL (expanded from dbname) may override the
     * timeout and the password given before it. */
    snprintf(timeout, sizeof(timeout), "%d", connect_timeout_s);
    const char *keys[5], *values[5];
    int n = 0;
    keys[n] = "connect_timeout", values[n++] = timeout;
    keys[n] = "fallback_application_name", values[n++] = "tokenctl";
    if (password != NULL && password[0] != '\0') {
        keys[n] = "password", values[n++] = password;
    }
    keys[n] = "dbname", values[n++] = url;
    keys[n] = NULL, values[n] = NULL;

    PGconn *conn = PQconnectdbParams(keys, values, 1);
    if (conn == NULL) {
        snprintf(error, error_size, "out of memory connecting to the database");
        return TK_ERROR;
    }
    if (PQstatus(conn) != CONNECTION_OK) {
        char message[400];
        pg_error_first_line(message, sizeof(message), PQerrorMessage(conn));
        snprintf(error, error_size, "cannot connect to the database: %s", message);
        PQfinish(conn);
        return TK_UNAVAILABLE;
    }
    *out = conn;
    return TK_OK;
}

/* Constraint names of 001_schema_migrations_and_clients.sql, in words. */
static const char *constraint_message(const char *name)
{
    static const struct {
        const char *constraint;
        const char *message;
    } known[] = {
        {"clients_client_id_check",
         "invalid client id: use 1 to 128 printable ASCII characters without spaces"},
        {"clients_token_ttl_s_check", "ttl must be between 1 and 86400 seconds"},
        {"clients_default_scopes_subset", "the default scopes must all be among the scopes"},
    };
    for (size_t i = 0; name != NULL && i < sizeof(known) / sizeof(known[0]); i++) {
        if (strcmp(name, known[i].constraint) == 0) {
            return known[i].message;
        }
    }
    return NULL;
}

/* Turns a failed result into a status code and a message. */
static int query_failure(PGconn *conn, const PGresult *res, const char *client_id, char *error,
                         size_t error_size)
{
    char message[400];
    const char *primary = res != NULL ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    pg_error_first_line(message, sizeof(message), primary != NULL ? primary : PQerrorMessage(conn));
    if (pg_error_is_connection_failure(conn, res)) {
        snprintf(error, error_size, "database unavailable: %s", message);
        return TK_UNAVAILABLE;
    }
    const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    if (strcmp(state, "23505") == 0) {
        snprintf(error, error_size, "client '%s' already exists", client_id);
        return TK_DECLINED;
    }
    if (strcmp(state, "23514") == 0) {
        const char *known = constraint_message(PQresultErrorField(res, PG_DIAG_CONSTRAINT_NAME));
        snprintf(error, error_size, "%s", known != NULL ? known : message);
        return TK_INVALID;
    }
    if (strncmp(state, "22", 2) == 0 || strncmp(state, "23", 2) == 0) {
        snprintf(error, error_size, "invalid value: %s", message);
        return TK_INVALID;
    }
    if (strcmp(state, "42P01") == 0) {
        snprintf(error, error_size, "the database has no clients table: run 'tokenctl migrate'");
        return TK_ERROR;
    }
    snprintf(error, error_size, "database error: %s", message);
    return TK_ERROR;
}

/* Runs one parameterised statement. TK_OK with *result (tuples or command
 * ok; caller PQclears it), else a failure code; *result is NULL then. */
static int run_query(PGconn *conn, const char *sql, int count, const char *const *params,
                     const char *client_id, PGresult **result, char *error, size_t error_size)
{
    PGresult *res = PQexecParams(conn, sql, count, NULL, params, NULL, NULL, 0);
    ExecStatusType status = res != NULL ? PQresultStatus(res) : PGRES_FATAL_ERROR;
    *result = NULL;
    if (status != PGRES_TUPLES_OK && status != PGRES_COMMAND_OK) {
        int rc = query_failure(conn, res, client_id, error, error_size);
        PQclear(res);
        return rc;
    }
    *result = res;
    return TK_OK;
}

/* Runs a change statement whose result has one row per changed client. */
static int run_change(PGconn *conn, const char *sql, int count, const char *const *params,
                      const char *client_id, char *error, size_t error_size)
{
    PGresult *res;
    int rc = run_query(conn, sql, count, params, client_id, &res, error, error_size);
    if (rc != TK_OK) {
        return rc;
    }
    if (PQntuples(res) == 0) {
        snprintf(error, error_size, "no client '%s'", client_id);
        rc = TK_NOT_FOUND;
    }
    PQclear(res);
    return rc;
}

static int invalid_id(char *error, size_t error_size)
{
    snprintf(error, error_size,
             "invalid client id: use 1 to %d printable ASCII characters without spaces",
             CLIENT_ID_MAX_LEN);
    return TK_INVALID;
}

int client_registry_add(PGconn *conn, const struct client_registry_settings *settings,
                        const char *secret_hash, char *error, size_t error_size)
{
    char *allowed = NULL, *defaults = NULL, *audiences = NULL;
    char ttl[24];
    int rc = client_registry_check_settings(settings, error, error_size);
    if (rc != TK_OK) {
        return rc;
    }
    if (secret_hash == NULL || secret_hash[0] == '\0') {
        snprintf(error, error_size, "no secret hash given");
        return TK_INVALID;
    }
    allowed = normalize_list(settings->allowed_scopes);
    defaults = normalize_list(settings->default_scopes != NULL ? settings->default_scopes : "");
    audiences = normalize_list(settings->audiences != NULL ? settings->audiences : "");
    if (allowed == NULL || defaults == NULL || audiences == NULL) {
        snprintf(error, error_size, "out of memory");
        rc = TK_ERROR;
        goto done;
    }
    snprintf(ttl, sizeof(ttl), "%lld", (long long)settings->token_ttl_s);
    const char *params[6] = {settings->client_id,
                             secret_hash,
                             allowed,
                             defaults,
                             audiences,
                             settings->token_ttl_s > 0 ? ttl : NULL};
    rc = run_change(conn,
                    "WITH added AS (INSERT INTO clients (client_id, secret_hash, allowed_scopes,"
                    " default_scopes, audiences, token_ttl_s) VALUES ($1, $2,"
                    " string_to_array($3, ' '), string_to_array($4, ' '),"
                    " string_to_array($5, ' '), $6::integer) RETURNING client_id)"
                    " SELECT pg_notify(" NOTIFY_CHANNEL ", client_id) FROM added",
                    6, params, settings->client_id, error, error_size);
    if (rc == TK_NOT_FOUND) { /* cannot happen: an INSERT returns its row */
        snprintf(error, error_size, "client '%s' was not added", settings->client_id);
        rc = TK_ERROR;
    }
done:
    free(allowed);
    free(defaults);
    free(audiences);
    return rc;
}

/* Copies row `row` of a select_columns result into *entry. */
static int fill_entry(const PGresult *res, int row, struct client_registry_entry *entry)
{
    memset(entry, 0, sizeof(*entry));
    char **strings[] = {&entry->client_id,
                        &entry->allowed_scopes,
                        &entry->default_scopes,
                        &entry->audiences,
                        &entry->grant_types,
                        NULL,
                        NULL,
                        &entry->created_at,
                        &entry->updated_at};
    for (int column = 0; column < (int)(sizeof(strings) / sizeof(strings[0])); column++) {
        if (strings[column] == NULL) {
            continue;
        }
        *strings[column] = strdup(PQgetvalue(res, row, column));
        if (*strings[column] == NULL) {
            client_registry_entry_free(entry);
            return TK_ERROR;
        }
    }
    entry->token_ttl_s = strtoll(PQgetvalue(res, row, 5), NULL, 10);
    entry->enabled = strcmp(PQgetvalue(res, row, 6), "t") == 0;
    return TK_OK;
}

int client_registry_get(PGconn *conn, const char *client_id, struct client_registry_entry *out,
                        char *error, size_t error_size)
{
    char sql[sizeof(select_columns) + 64];
    PGresult *res;
    memset(out, 0, sizeof(*out));
    if (!client_id_valid(client_id)) {
        return invalid_id(error, error_size);
    }
    snprintf(sql, sizeof(sql), "%s WHERE client_id = $1", select_columns);
    const char *params[1] = {client_id};
    int rc = run_query(conn, sql, 1, params, client_id, &res, error, error_size);
    if (rc != TK_OK) {
        return rc;
    }
    if (PQntuples(res) == 0) {
        snprintf(error, error_size, "no client '%s'", client_id);
        rc = TK_NOT_FOUND;
    } else if (fill_entry(res, 0, out) != TK_OK) {
        snprintf(error, error_size, "out of memory");
        rc = TK_ERROR;
    }
    PQclear(res);
    return rc;
}

int client_registry_list(PGconn *conn, struct client_registry_entry **entries, size_t *count,
                         char *error, size_t error_size)
{
    char sql[sizeof(select_columns) + 64];
    PGresult *res;
    struct client_registry_entry *list = NULL;
    size_t filled = 0;
    *entries = NULL;
    *count = 0;
    snprintf(sql, sizeof(sql), "%s ORDER BY client_id COLLATE \"C\"", select_columns);
    int rc = run_query(conn, sql, 0, NULL, "", &res, error, error_size);
    if (rc != TK_OK) {
        return rc;
    }
    size_t rows = (size_t)PQntuples(res);
    list = calloc(rows > 0 ? rows : 1, sizeof(*list));
    if (list == NULL) {
        rc = TK_ERROR;
        goto fail;
    }
    for (; filled < rows; filled++) {
        rc = fill_entry(res, (int)filled, &list[filled]);
        if (rc != TK_OK) {
            goto fail;
        }
    }
    PQclear(res);
    *entries = list;
    *count = rows;
    return TK_OK;
fail:
    snprintf(error, error_size, "out of memory");
    client_registry_entries_free(list, filled);
    PQclear(res);
    return TK_ERROR;
}

int client_registry_update_secret(PGconn *conn, const char *client_id, const char *secret_hash,
                                  char *error, size_t error_size)
{
    if (!client_id_valid(client_id)) {
        return invalid_id(error, error_size);
    }
    if (secret_hash == NULL || secret_hash[0] == '\0') {
        snprintf(error, error_size, "no secret hash given");
        return TK_INVALID;
    }
    const char *params[2] = {client_id, secret_hash};
    return run_change(conn,
                      "WITH changed AS (UPDATE clients SET secret_hash = $2, updated_at = now()"
                      " WHERE client_id = $1 RETURNING client_id)"
                      " SELECT pg_notify(" NOTIFY_CHANNEL ", client_id) FROM changed",
                      2, params, client_id, error, error_size);
}

int client_registry_set_scopes(PGconn *conn, const char *client_id, const char *allowed_scopes,
                               const char *default_scopes, char *error, size_t error_size)
{
    char *allowed = NULL, *defaults = NULL;
    int rc;
    if (!client_id_valid(client_id)) {
        return invalid_id(error, error_size);
    }
    rc = client_registry_check_scopes(allowed_scopes, default_scopes, error, error_size);
    if (rc != TK_OK) {
        return rc;
    }
    allowed = normalize_list(allowed_scopes);
    defaults = default_scopes != NULL ? normalize_list(default_scopes) : NULL;
    if (allowed == NULL || (default_scopes != NULL && defaults == NULL)) {
        snprintf(error, error_size, "out of memory");
        rc = TK_ERROR;
        goto done;
    }
    const char *params[3] = {client_id, allowed, defaults};
    rc = run_change(conn,
                    "WITH changed AS (UPDATE clients SET allowed_scopes = string_to_array($2, ' '),"
                    " default_scopes = CASE WHEN $3::text IS NULL THEN default_scopes"
                    " ELSE string_to_array($3, ' ') END, updated_at = now()"
                    " WHERE client_id = $1 RETURNING client_id)"
                    " SELECT pg_notify(" NOTIFY_CHANNEL ", client_id) FROM changed",
                    3, params, client_id, error, error_size);
    if (rc == TK_INVALID && default_scopes == NULL) {
        snprintf(error, error_size,
                 "client '%s' has default scopes that are not among the new scopes; "
                 "give the default scopes too",
                 client_id);
    }
done:
    free(allowed);
    free(defaults);
    return rc;
}

int client_registry_set_enabled(PGconn *conn, const char *client_id, bool enabled, char *error,
                                size_t error_size)
{
    if (!client_id_valid(client_id)) {
        return invalid_id(error, error_size);
    }
    const char *params[2] = {client_id, enabled ? "true" : "false"};
    return run_change(conn,
                      "WITH changed AS (UPDATE clients SET enabled = $2::boolean,"
                      " updated_at = now() WHERE client_id = $1 RETURNING client_id)"
                      " SELECT pg_notify(" NOTIFY_CHANNEL ", client_id) FROM changed",
                      2, params, client_id, error, error_size);
}

int client_registry_delete(PGconn *conn, const char *client_id, char *error, size_t error_size)
{
    if (!client_id_valid(client_id)) {
        return invalid_id(error, error_size);
    }
    const char *params[1] = {client_id};
    return run_change(conn,
                      "WITH deleted AS (DELETE FROM clients WHERE client_id = $1"
                      " RETURNING client_id)"
                      " SELECT pg_notify(" NOTIFY_CHANNEL ", client_id) FROM deleted",
                      1, params, client_id, error, error_size);
}

int client_registry_revoke_all(PGconn *conn, const char *client_id, char *error, size_t error_size)
{
    if (!client_id_valid(client_id)) {
        return invalid_id(error, error_size);
    }
    const char *params[1] = {client_id};
    return run_change(conn,
                      "WITH changed AS (UPDATE clients SET tokens_not_before = now(),"
                      " updated_at = now() WHERE client_id = $1 RETURNING client_id)"
                      " SELECT pg_notify(" NOTIFY_CHANNEL ", client_id) FROM changed",
                      1, params, client_id, error, error_size);
}

void client_registry_entry_free(struct client_registry_entry *entry)
{
    free(entry->client_id);
    free(entry->allowed_scopes);
    free(entry->default_scopes);
    free(entry->audiences);
    free(entry->grant_types);
    free(entry->created_at);
    free(entry->updated_at);
    memset(entry, 0, sizeof(*entry));
}

void client_registry_entries_free(struct client_registry_entry *entries, size_t count)
{
    if (entries == NULL) {
        return;
    }
    for (size_t i = 0; i < count; i++) {
        client_registry_entry_free(&entries[i]);
    }
    free(entries);
}

int client_registry_set_notify_channel(PGconn *conn, const char *channel, char *error,
                                       size_t error_size)
{
    const char *params[1] = {channel};
    PGresult *res = PQexecParams(conn, "SELECT set_config('tokend.notify_channel', $1, false)", 1,
                                 NULL, params, NULL, NULL, 0);
    int rc = PQresultStatus(res) == PGRES_TUPLES_OK ? TK_OK : TK_ERROR;
    if (rc != TK_OK) {
        char line[256];
        pg_error_first_line(line, sizeof(line), PQerrorMessage(conn));
        snprintf(error, error_size, "cannot set the notify channel: %s", line);
    }
    PQclear(res);
    return rc;
}
