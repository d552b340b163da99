-- service_graph_minute counted one connection per outbound connect (and udp_flow) event. With
-- collectors.network.summarize, a connect_summary event stands for network.packets short
-- connections to one destination: it now counts as that many (and its bytes, the totals of
-- those connections, are summed as before). Rows written before stay as they are.
DROP TABLE IF EXISTS {{.Database}}.service_graph_minute_mv{{.OnCluster}};
CREATE MATERIALIZED VIEW IF NOT EXISTS {{.Database}}.service_graph_minute_mv{{.OnCluster}}
TO {{.Table "service_graph_minute"}}
AS SELECT toStartOfMinute(time) AS minute, service AS src_service,
    if(dst_hostname != '', dst_hostname, dst_ip) AS dst, dst_port, protocol, host_name AS src_host,
    countIf(action IN ('connect', 'udp_flow')) + toUInt64(sumIf(packets, action = 'connect_summary')) AS connections,
    sumIf(bytes_sent, action != 'update') AS bytes_sent,
    sumIf(bytes_received, action != 'update') AS bytes_received
FROM {{.Table "network_events"}}
WHERE direction = 'outbound'
GROUP BY minute, src_service, dst, dst_port, protocol, src_host;
