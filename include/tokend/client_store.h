/*
 * client_store.h - the worker's read path to the clients table: one indexed
 * query by client_id, through db_conn's deadline.
 */
#ifndef TOKEND_CLIENT_STORE_H
#define TOKEND_CLIENT_STORE_H

#include "tokend/arena.h"
#include "tokend/client_record.h"
#include "tokend/db_conn.h"

/* Fills *record with strings copied into `arena`. Returns TK_OK,
 * TK_NOT_FOUND, TK_UNAVAILABLE (database unreachable or slow), or TK_ERROR
 * (SQL error or out of memory). *record is untouched unless TK_OK. */
int client_store_lookup(struct db_conn *conn, const char *client_id, struct arena *arena,
                        struct client_record *record);

#endif
