"""Images: a file's bytes to an upright RGB picture, a picture to a model's input pixels, and thumbnails.

decode      one file's bytes to an upright RGB picture, or a typed error that says why not
isolated    untrusted bytes decoded in a child process with time and address-space limits
pixels      a picture as a model wants its pixels: RGB, resized and centre-cropped as open_clip does
thumbnails  small upright JPEGs of photos, kept in a bounded cache in the database folder
"""
