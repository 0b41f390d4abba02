"""The boleto: FEBRABAN codes, nosso número and linha digitável (codes), the Pix
BR Code (pix), the PDF slip (pdf) and issuing boletos for charges (issuing)."""
