"""Declarative mappings: ERP export rows -> document sections, with every value's origin."""
