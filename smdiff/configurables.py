"""Everything gin may configure, registered in one place (t5x style: gin stays at the edges).

Entry points import this module before parsing gin files; library modules never import gin. Each
section below registers one part of smdiff under a gin module name, so gin files read
`melody_vae.MelodyVAE.hidden_size = 256` and the like.
"""
import gin
