/*
 * db_conn.h - a worker's one PostgreSQL connection, used only on client
 * cache misses, with a hard deadline on everything it does.
 *
 * Connecting and querying are asynchronous libpq calls driven by poll(2), so
 * a database that is down, restarting or frozen costs a request at most
 * `timeout_ms`, never a hang. After a failure the connection is dropped and,
 * for `retry_interval_ms`, further queries fail at once without trying (so
 * a flood of misses during an outage does not pile up connection attempts);
 * the first query after that reconnects.
 */
#ifndef TOKEND_DB_CONN_H
#define TOKEND_DB_CONN_H

#include <libpq-fe.h>

struct db_conn;

/* Copies the parameters; connects lazily. NULL when out of memory. */
struct db_conn *db_conn_create(const char *conninfo, const char *password, int timeout_ms,
                               int retry_interval_ms);

/* Closes the connection and frees everything. NULL allowed. */
void db_conn_destroy(struct db_conn *conn);

/* Runs `sql` as a named prepared statement (prepared once per connection)
 * with text parameters. Returns TK_OK with *result (PGRES_TUPLES_OK or
 * PGRES_COMMAND_OK; caller PQclears it); TK_UNAVAILABLE when the database
 * could not be reached or did not answer in time, or during the retry pause
 * (the connection is dropped); TK_ERROR when the server answered with an
 * error (logged, without parameter values). *result is NULL unless TK_OK. */
int db_conn_query(struct db_conn *conn, const char *statement_name, const char *sql,
                  int param_count, const char *const *params, PGresult **result);

/* Runs `sql` (one or more commands, no parameters) with the simple query
 * protocol. Returns TK_OK, TK_UNAVAILABLE or TK_ERROR as db_conn_query.
 * When `result` is non-NULL it receives the last command's result on TK_OK
 * (caller PQclears it). */
int db_conn_exec(struct db_conn *conn, const char *sql, PGresult **result);

/* Runs `copy_sql` (a COPY ... FROM STDIN in text format) and streams `len`
 * bytes of `data` as its input. Returns TK_OK once the server has accepted
 * every row, TK_UNAVAILABLE or TK_ERROR as db_conn_query. */
int db_conn_copy_in(struct db_conn *conn, const char *copy_sql, const char *data, size_t len);

/* The SQLSTATE of the last TK_ERROR ("23505" for a unique violation), or
 * "" when the last command did not fail with a server error. Cannot fail. */
const char *db_conn_last_sqlstate(const struct db_conn *conn);

/* Counts the connections made so far: it changes when the connection was
 * replaced, so session state (temporary tables, an open transaction) is
 * gone. A caller running a transaction checks it did not change between
 * BEGIN and COMMIT. Cannot fail. */
unsigned long db_conn_generation(const struct db_conn *conn);

#endif
