#!/bin/bash
# Runs a Java class of Kafka's with the jars in /opt/kafka/libs and the
# environment variables Kafka's own scripts read.
set -euo pipefail
# Each variable holds several JVM options: split on spaces, as Kafka's scripts do.
# shellcheck disable=SC2086
exec java ${KAFKA_HEAP_OPTS:--Xmx256m} ${KAFKA_JVM_PERFORMANCE_OPTS:--XX:+UseSerialGC} \
  -Djava.awt.headless=true ${KAFKA_LOG4J_OPTS:-} ${KAFKA_OPTS:-} \
  -cp '/opt/kafka/libs/*' "$@"
