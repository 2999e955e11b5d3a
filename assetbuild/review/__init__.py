"""``assetbuild review``: a static, self-contained page of every asset, with before/after since a git ref.

``data`` collects what the page shows (cards, groups, field diffs) from the manifest, the lock, the plan
and git; ``thumbs`` writes the images and thumbnails; ``html`` and ``markdown`` render. Each is
importable on its own, and the data can be tested without a browser.
"""
