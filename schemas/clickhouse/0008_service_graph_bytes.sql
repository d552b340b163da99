-- service_graph_minute summed the bytes of every outbound network event, but an update
-- carries a connection's bytes so far, not since the last one: a connection long enough to
-- be updated was counted once per update and again at its close. Its bytes now come from the
-- events that carry a connection's final figures (its close, or the connect of a connection
-- that closed within the collector's coalesce window) and from udp_flow events (each one sums
-- its own interval), counted in the minute they arrive. Rows written before stay as they are.
DROP TABLE IF EXISTS {{.Database}}.service_graph_minute_mv{{.OnCluster}};
CREATE MATERIALIZED VIEW IF NOT EXISTS {{.Database}}.service_graph_minute_mv{{.OnCluster}}
TO {{.Table "service_graph_minute"}}
AS SELECT toStartOfMinute(time) AS minute, service AS src_service,
    if(dst_hostname != '', dst_hostname, dst_ip) AS dst, dst_port, protocol, host_name AS src_host,
    countIf(action IN ('connect', 'udp_flow')) AS connections,
    sumIf(bytes_sent, action != 'update') AS bytes_sent,
    sumIf(bytes_received, action != 'update') AS bytes_received
FROM {{.Table "network_events"}}
WHERE direction = 'outbound'
GROUP BY minute, src_service, dst, dst_port, protocol, src_host;
