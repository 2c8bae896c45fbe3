#!/bin/bash
# kafka-server-start.sh <server.properties>, as in Kafka's distribution.
exec "$(dirname "$0")/kafka-run-class.sh" kafka.Kafka "$@"
