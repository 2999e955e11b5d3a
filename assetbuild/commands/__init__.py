"""The implementations of assetbuild's commands; ``cli`` parses arguments and calls them."""
