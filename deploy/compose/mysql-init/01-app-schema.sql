-- Runs once, when the MySQL container initialises an empty data directory.
-- The image has already created the `app` schema and the `cdc` user
-- (MYSQL_DATABASE, MYSQL_USER: all privileges on app.*).

-- A sample application schema. Every replicated table needs a primary key:
-- rows are matched across regions by it.
CREATE TABLE IF NOT EXISTS app.users (
  id BIGINT UNSIGNED NOT NULL PRIMARY KEY,
  email VARCHAR(255) NOT NULL,
  name VARCHAR(255) NOT NULL,
  updated_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6),
  UNIQUE KEY by_email (email)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE IF NOT EXISTS app.orders (
  id BIGINT UNSIGNED NOT NULL PRIMARY KEY,
  user_id BIGINT UNSIGNED NOT NULL,
  amount DECIMAL(12, 2) NOT NULL,
  status ENUM('new', 'paid', 'shipped', 'cancelled') NOT NULL DEFAULT 'new',
  note JSON NULL,
  created_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  KEY by_user (user_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

-- What the daemon needs beyond app.*: the binlog stream (capture) and the
-- replicator's internal schema, which `prepare` creates (written `\_cdc`
-- because "_" is a wildcard in GRANT's schema names). One user does both
-- stages and `prepare` here; docs/OPERATIONS.md ("Grants") splits them.
GRANT REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO 'cdc'@'%';
GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, ALTER, INDEX ON `\_cdc`.* TO 'cdc'@'%';
