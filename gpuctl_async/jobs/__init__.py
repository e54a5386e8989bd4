"""Job behaviour built on the Kubernetes layer: status, lookup, create, delete, views."""
