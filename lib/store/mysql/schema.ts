/**
 * Every SQL statement fastify-wsc runs (docs/delivery.md "Schema"): the versioned migrations and the
 * queries of the MySQL message store. Nothing else in the code spells SQL.
 *
 * User ids are VARBINARY (their UTF-8 bytes): compared byte for byte, so `Bob`, `bob` and `bob ` are
 * three users, as they are everywhere else in fastify-wsc, whatever the server's default collation.
 */
import type { Pool, PoolConnection, RowDataPacket } from 'mysql2/promise'

interface Migration {
  version: number
  description: string
  /** Idempotent steps: a migration interrupted before its version row is written runs again. */
  statements: Array<string | ((conn: PoolConnection) => Promise<void>)>
}

const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    description: 'per-user inbox state and user messages',
    statements: [
      `CREATE TABLE IF NOT EXISTS wsc_inboxes (
        user_id VARBINARY(1024) NOT NULL,
        seq BIGINT UNSIGNED NOT NULL DEFAULT 0 COMMENT 'latest seq given to a message of this user',
        acked_seq BIGINT UNSIGNED NOT NULL DEFAULT 0 COMMENT 'highest seq the user acknowledged',
        PRIMARY KEY (user_id)
      ) ENGINE=InnoDB`,
      `CREATE TABLE IF NOT EXISTS wsc_messages (
        user_id VARBINARY(1024) NOT NULL,
        seq BIGINT UNSIGNED NOT NULL,
        id CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL COMMENT 'message id: a retried insert cannot add a second row',
        sender VARBINARY(1024) NULL COMMENT 'the sending user; NULL for server-sent messages',
        ts BIGINT NOT NULL COMMENT 'epoch ms when the message was sent',
        data LONGTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL COMMENT 'the payload as JSON text',
        PRIMARY KEY (user_id, seq),
        UNIQUE KEY wsc_messages_id (id),
        KEY wsc_messages_ts (ts)
      ) ENGINE=InnoDB`
    ]
  },
  {
    version: 2,
    description: 'the database epoch; message ids chosen by the caller, unique per user',
    statements: [
      `CREATE TABLE IF NOT EXISTS wsc_meta (
        name VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
        value VARCHAR(255) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
        PRIMARY KEY (name)
      ) ENGINE=InnoDB`,
      "INSERT IGNORE INTO wsc_meta (name, value) VALUES ('epoch', CONCAT('s', REPLACE(UUID(), '-', '')))",
      'ALTER TABLE wsc_messages MODIFY id VARCHAR(128) CHARACTER SET ascii COLLATE ascii_bin NOT NULL',
      async (conn) => {
        if (!await hasIndex(conn, 'wsc_messages', 'wsc_messages_user_id')) await conn.query('ALTER TABLE wsc_messages ADD UNIQUE KEY wsc_messages_user_id (user_id, id)')
      },
      async (conn) => {
        if (await hasIndex(conn, 'wsc_messages', 'wsc_messages_id')) await conn.query('ALTER TABLE wsc_messages DROP INDEX wsc_messages_id')
      }
    ]
  }
]

/** Whether the table in this database has the index (MySQL has no `IF EXISTS` for indexes). */
async function hasIndex (conn: PoolConnection, table: string, index: string): Promise<boolean> {
  const [rows] = await conn.query<RowDataPacket[]>(
    'SELECT 1 FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? AND INDEX_NAME = ? LIMIT 1', [table, index])
  return rows.length > 0
}

/** The schema version this code writes and reads. */
export const SCHEMA_VERSION = MIGRATIONS[MIGRATIONS.length - 1]?.version ?? 0

const MIGRATION_LOCK_TIMEOUT_S = 30

export interface MigrationResult {
  /** The version recorded after the run (may be newer than {@link SCHEMA_VERSION} during a rolling upgrade). */
  version: number
  /** Versions this run applied; empty when the schema was current. */
  applied: number[]
}

/**
 * Brings the schema to {@link SCHEMA_VERSION}: idempotent, and safe when several pods start at once
 * (a named lock per database serializes them). Each applied version is recorded in
 * `wsc_schema_migrations`.
 */
export async function migrate (pool: Pool): Promise<MigrationResult> {
  const conn = await pool.getConnection()
  try {
    await conn.query(`CREATE TABLE IF NOT EXISTS wsc_schema_migrations (
      version INT UNSIGNED NOT NULL,
      description VARCHAR(255) NOT NULL,
      applied_at TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
      PRIMARY KEY (version)
    ) ENGINE=InnoDB`)
    const [[lock]] = await conn.query<Array<{ got: number | null }> & RowDataPacket[]>(
      "SELECT GET_LOCK(CONCAT('wsc_schema_migration:', DATABASE()), ?) AS got", [MIGRATION_LOCK_TIMEOUT_S])
    if (lock?.got !== 1) throw new Error(`another process held the schema migration lock for ${MIGRATION_LOCK_TIMEOUT_S} s`)
    try {
      let version = await recordedVersion(conn)
      const applied: number[] = []
      for (const migration of MIGRATIONS) {
        if (migration.version <= version) continue
        for (const statement of migration.statements) {
          if (typeof statement === 'string') await conn.query(statement)
          else await statement(conn)
        }
        await conn.query('INSERT INTO wsc_schema_migrations (version, description) VALUES (?, ?)', [migration.version, migration.description])
        applied.push(migration.version)
        version = migration.version
      }
      return { version, applied }
    } finally {
      await conn.query("SELECT RELEASE_LOCK(CONCAT('wsc_schema_migration:', DATABASE()))")
    }
  } finally {
    conn.release()
  }
}

async function recordedVersion (conn: PoolConnection): Promise<number> {
  const [[row]] = await conn.query<Array<{ version: number }> & RowDataPacket[]>(
    'SELECT COALESCE(MAX(version), 0) AS version FROM wsc_schema_migrations')
  return Number(row?.version ?? 0)
}

/** The versions recorded in `wsc_schema_migrations`, ascending. */
export async function recordedVersions (pool: Pool): Promise<number[]> {
  const [rows] = await pool.query<Array<{ version: number }> & RowDataPacket[]>(
    'SELECT version FROM wsc_schema_migrations ORDER BY version')
  return rows.map((row) => Number(row.version))
}

const list = (n: number, item: string, separator = ', '): string => Array.from({ length: n }, () => item).join(separator)

/** The store's queries; `?` placeholders are filled by mysql2 in the order the comments give. */
export const Sql = {
  begin: 'START TRANSACTION',
  commit: 'COMMIT',
  rollback: 'ROLLBACK',
  /** `@@max_allowed_packet`: the largest statement the server accepts. */
  maxAllowedPacket: 'SELECT @@max_allowed_packet AS bytes',
  probe: 'SELECT 1 AS ok',

  /** users… → (user_id, seq) of those that have an inbox row, locked until COMMIT. */
  lockInboxes: (users: number): string =>
    `SELECT user_id, seq FROM wsc_inboxes WHERE user_id IN (${list(users, '?')}) FOR UPDATE`,
  /** users… → (user_id, seq): the highest stored seq, to start an inbox row that was lost. */
  maxStoredSeq: (users: number): string =>
    `SELECT user_id, MAX(seq) AS seq FROM wsc_messages WHERE user_id IN (${list(users, '?')}) GROUP BY user_id`,
  /** (user_id, seq)… : sets each user's latest seq. */
  upsertInboxSeqs: (users: number): string =>
    `INSERT INTO wsc_inboxes (user_id, seq) VALUES ${list(users, '(?, ?)')} ON DUPLICATE KEY UPDATE seq = VALUES(seq)`,
  /** (user_id, seq, id, sender, ts, data)… : one multi-row INSERT per group commit. */
  insertMessages: (messages: number): string =>
    `INSERT INTO wsc_messages (user_id, seq, id, sender, ts, data) VALUES ${list(messages, '(?, ?, ?, ?, ?, ?)')}`,
  /** (user_id, id)… → (id, user_id, seq) of the messages already stored. */
  findMessages: (messages: number): string =>
    `SELECT id, user_id, seq FROM wsc_messages WHERE (user_id, id) IN (${list(messages, '(?, ?)')})`,

  /** user_id, afterSeq, limit → messages ascending. */
  since: 'SELECT seq, id, sender, ts, data FROM wsc_messages WHERE user_id = ? AND seq > ? ORDER BY seq LIMIT ?',
  /** user_id, afterSeq, beforeSeq, limit → messages ascending. */
  sinceBefore: 'SELECT seq, id, sender, ts, data FROM wsc_messages WHERE user_id = ? AND seq > ? AND seq < ? ORDER BY seq LIMIT ?',
  /** user_id → (seq, acked_seq). */
  inbox: 'SELECT seq, acked_seq FROM wsc_inboxes WHERE user_id = ?',
  /** user_id → (seq, oldest): the latest seq and the oldest one still held; no row for a user without an inbox. */
  head: 'SELECT i.seq, (SELECT MIN(m.seq) FROM wsc_messages m WHERE m.user_id = i.user_id) AS oldest FROM wsc_inboxes i WHERE i.user_id = ?',
  /** → (value): this database's epoch. */
  epoch: "SELECT value FROM wsc_meta WHERE name = 'epoch'",
  /** (user_id, seq)… , users… : raises acked_seq, never past the user's latest seq nor backwards. */
  ack: (users: number): string =>
    `UPDATE wsc_inboxes SET acked_seq = GREATEST(acked_seq, LEAST(CASE user_id ${list(users, 'WHEN ? THEN ?', ' ')} END, seq)) WHERE user_id IN (${list(users, '?')})`,

  /** Makes the next statement on this connection read committed rows only (fewer gap locks for DELETEs). */
  readCommittedNext: 'SET TRANSACTION ISOLATION LEVEL READ COMMITTED',
  /** cutoffTs, limit: deletes the oldest messages sent before cutoffTs. */
  deleteOlderThan: 'DELETE FROM wsc_messages WHERE ts < ? ORDER BY ts LIMIT ?',
  /** afterUserId, minSeq, limit → inboxes whose latest seq exceeds minSeq (they may hold more than minSeq messages). */
  inboxesOver: 'SELECT user_id FROM wsc_inboxes WHERE user_id > ? AND seq > ? ORDER BY user_id LIMIT ?',
  /** user_id, keep → the seq of the newest message beyond the `keep` newest; none when the user has at most `keep`. */
  countBoundary: 'SELECT seq FROM wsc_messages WHERE user_id = ? ORDER BY seq DESC LIMIT 1 OFFSET ?',
  /** user_id, maxBytes → the seq of the newest message past which the user's newer ones hold maxBytes of payload; never the newest. */
  bytesBoundary: `SELECT seq FROM (
      SELECT seq, SUM(LENGTH(data)) OVER (ORDER BY seq DESC) AS total, ROW_NUMBER() OVER (ORDER BY seq DESC) AS n
      FROM wsc_messages WHERE user_id = ?
    ) newest WHERE total > ? AND n > 1 ORDER BY seq DESC LIMIT 1`,
  /** user_id, seq, limit: deletes the user's oldest messages up to seq. */
  deleteUpTo: 'DELETE FROM wsc_messages WHERE user_id = ? AND seq <= ? ORDER BY seq LIMIT ?'
} as const
