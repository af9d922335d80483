"""One reader per input format, each producing a column-wise ``Table`` (see ``_common``).

Which reader a file gets is decided in ``ftui.prepare._read`` from its extension and content.
"""
