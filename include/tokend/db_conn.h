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

#endif
