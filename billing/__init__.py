"""The domain: everything the fund's billing does, with no Streamlit and no SQL text.
One sub-package per capability; billing.core is the leaf every layer may import."""
