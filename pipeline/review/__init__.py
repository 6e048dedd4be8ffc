"""The conservator's review: IIIF deep zoom from the store, a page on OpenSeadragon, saved corrections."""
