/*
 * migrations.h - bringing a PostgreSQL database up to tokend's schema.
 *
 * A migration is a file NNN_name.sql in one directory: NNN is at least three
 * digits, name is letters, digits, '_' and '-'. Versions start at 1 and have
 * no gap and no duplicate; other files ending in .sql are an error, files
 * not ending in .sql (and dot files) are ignored.
 *
 * Applied versions are recorded in schema_migrations(version, name,
 * applied_at), which the runner creates itself if it is missing. Each
 * pending file runs in its own transaction together with its
 * schema_migrations row, in version order, while the runner holds a session
 * advisory lock: concurrent runs on one database serialise and the later
 * ones find nothing left to do. A file must not contain transaction control
 * (BEGIN/COMMIT); the runner checks that the transaction is still open after
 * the file ran.
 */
#ifndef TOKEND_MIGRATIONS_H
#define TOKEND_MIGRATIONS_H

#include <stddef.h>

#include <libpq-fe.h>

#define MIGRATION_NAME_MAX 100

struct migration {
    int version;                             /* 1, 2, ... */
    char name[MIGRATION_NAME_MAX + 1];       /* "schema_migrations_and_clients" */
    char file_name[MIGRATION_NAME_MAX + 32]; /* "001_schema_migrations_and_clients.sql" */
};

struct migration_list {
    struct migration *items; /* sorted by version; items[i].version == i + 1 */
    size_t count;
};

/* Lists the migrations in `sql_dir`. Returns TK_OK with a non-empty list
 * the caller frees with migrations_list_free; TK_INVALID with `error` when a
 * file name is malformed, a version is missing or repeated, or there is no
 * migration at all; TK_ERROR with `error` when the directory cannot be read
 * or memory runs out. On failure `out` is empty. */
int migrations_scan(const char *sql_dir, struct migration_list *out, char *error,
                    size_t error_size);

/* Frees the list and empties it. Cannot fail. */
void migrations_list_free(struct migration_list *list);

/* Called after each migration is committed. */
typedef void (*migrations_applied_fn)(const struct migration *migration, void *context);

/* Applies every migration of `sql_dir` not yet recorded in the database
 * behind `conn`, calling `on_applied` (may be NULL) after each commit.
 * Returns the number applied (0: already up to date), or:
 *   TK_INVALID     the directory is unusable (see migrations_scan), or it
 *                  disagrees with the database's history (a version applied
 *                  under another name, or applied but missing from the
 *                  directory, or applied out of order); nothing was applied;
 *   TK_UNAVAILABLE the connection failed or was lost;
 *   TK_ERROR       a migration failed (it was rolled back; the ones before
 *                  it stay applied) or a file could not be read.
 * `error` then holds one line naming the file and, when PostgreSQL reports
 * one, the line in it. The advisory lock is released before returning. */
int migrations_apply(PGconn *conn, const char *sql_dir, migrations_applied_fn on_applied,
                     void *context, char *error, size_t error_size);

#endif
