//! Placeholder: the matching helper writes this file.
