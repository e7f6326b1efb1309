#!/bin/bash
# As in Kafka's distribution: the API versions every broker of --bootstrap-server supports
# (exit 0 only when a broker answers). A small heap: compose runs it as the health check.
exec java -Xmx96m -XX:TieredStopAtLevel=1 -XX:+UseSerialGC \
  -Dlog4j.configuration=file:/opt/kafka/config/log4j.properties \
  -cp "/opt/kafka/libs/*" kafka.admin.BrokerApiVersionsCommand "$@"
