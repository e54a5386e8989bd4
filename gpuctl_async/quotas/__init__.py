"""Quotas and namespaces: ResourceQuotas built from ``kind: quota`` documents, created
all-or-nothing, reported with their utilization; gpuctl's namespaces and their rules."""
