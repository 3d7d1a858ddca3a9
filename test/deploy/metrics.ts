/**
 * The metrics the pods export on :8081/metrics that the alerts and the dashboard use. The metrics
 * work (issue 5) exports them under these names; docs/deploy-kubernetes.md lists them.
 */
export const WSC_METRICS: Record<string, string> = {
  wsc_connections: 'gauge: open WebSocket connections on the pod',
  wsc_connections_opened_total: 'counter: upgrades accepted',
  wsc_connections_closed_total: 'counter by code: connections closed, by close code',
  wsc_messages_out_total: 'counter by target (user, room, connection, broadcast): frames delivered',
  wsc_delivery_latency_seconds: 'histogram: from send to the write on the receiving socket',
  wsc_drops_total: 'counter by reason: frames not delivered live',
  wsc_redis_up: 'gauge 0/1: Redis reachable',
  wsc_mysql_up: 'gauge 0/1: MySQL reachable (exported only when MySQL is configured)',
  wsc_cluster_nodes: 'gauge: live nodes in the Redis node registry'
}
